import pytest

from kubeling.api.errors import ApiError
from kubeling.api.selectors import (
    parse_field_selector,
    parse_label_selector,
    selector_from_spec,
    selector_to_string,
)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app!=web", {"app": "db"}, True),
        ("app!=web", {}, True),
        ("app in (web, db)", {"app": "db"}, True),
        ("app notin (web,db)", {"app": "cache"}, True),
        ("app notin (web,db)", {"app": "web"}, False),
        ("app", {"app": ""}, True),
        ("!app", {"app": "x"}, False),
        ("!app", {}, True),
        ("tier=fe,app in (web)", {"app": "web", "tier": "fe"}, True),
        ("tier=fe,app in (web)", {"app": "web", "tier": "be"}, False),
        ("n>3", {"n": "4"}, True),
        ("n<3", {"n": "4"}, False),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selector_grammar_matches_like_kubernetes(text, labels, expected):
    assert parse_label_selector(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["app=", "=web", "app in web", "a b c", "app=we b", "n>x"])
def test_malformed_label_selector_is_a_400(text):
    if text == "app=":
        # An empty value is valid in Kubernetes: `app=` selects app="".
        assert parse_label_selector(text).matches({"app": ""})
        return
    with pytest.raises(ApiError) as err:
        parse_label_selector(text)
    assert err.value.code == 400


def test_structured_selector_compiles_match_labels_and_expressions():
    spec = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "edge"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    selector = selector_from_spec(spec)
    assert selector.matches({"app": "web", "tier": "edge"})
    assert not selector.matches({"app": "web", "tier": "edge", "legacy": "1"})
    assert selector_to_string(spec) == "app=web,tier in (edge,fe),!legacy"


def test_field_selector_supports_kind_specific_fields():
    pod = {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    assert parse_field_selector("spec.nodeName=n1,status.phase!=Failed", "", "Pod").matches(pod)
    assert not parse_field_selector("metadata.name=q", "", "Pod").matches(pod)
    assert parse_field_selector("metadata.name=p", "", "Pod").exact_name() == "p"


def test_unsupported_field_selector_is_a_400_naming_the_field():
    with pytest.raises(ApiError) as err:
        parse_field_selector("spec.nodeName=n1", "", "ConfigMap")
    assert err.value.code == 400
    assert "field label not supported: spec.nodeName" in err.value.message


def test_event_field_selectors_used_by_kubectl_describe():
    event = {
        "involvedObject": {"name": "web", "namespace": "default", "uid": "u1", "kind": "Deployment"}
    }
    text = "involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u1"
    assert parse_field_selector(text, "", "Event").matches(event)
