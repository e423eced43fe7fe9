import pytest
from scheduler_support import expression, node, pod, required_terms

from kubeling.scheduler.affinity import pinned_node_names
from kubeling.scheduler.filters import node_affinity
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.podinfo import PodInfo

MISMATCH = ("node(s) didn't match Pod's node affinity/selector",)
LABELS = {"zone": "east", "cores": "8", "gpu": ""}


def _fits(pod_dict, labels=LABELS, name="a"):
    return node_affinity(PodInfo.of(pod_dict), NodeInfo(node(name, labels=labels))) == ()


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (expression("zone", "In", "east", "west"), True),
        (expression("zone", "In", "west"), False),
        (expression("region", "In", "east"), False),
        (expression("zone", "NotIn", "west"), True),
        (expression("zone", "NotIn", "east"), False),
        (expression("region", "NotIn", "east"), True),  # absent key satisfies NotIn
        (expression("gpu", "Exists"), True),
        (expression("tpu", "Exists"), False),
        (expression("tpu", "DoesNotExist"), True),
        (expression("gpu", "DoesNotExist"), False),
        (expression("cores", "Gt", "4"), True),
        (expression("cores", "Gt", "8"), False),
        (expression("cores", "Lt", "16"), True),
        (expression("cores", "Lt", "8"), False),
        (expression("zone", "Gt", "1"), False),  # label value is not an integer
        (expression("memory", "Lt", "1"), False),  # absent key never satisfies Gt/Lt
    ],
)
def test_match_expression_operators(requirement, expected):
    p = pod("p", affinity=required_terms({"matchExpressions": [requirement]}))
    assert _fits(p) is expected


@pytest.mark.parametrize(
    "requirement",
    [
        expression("cores", "Gt", "4", "5"),  # Gt takes exactly one value
        expression("cores", "Gt", "four"),
        expression("zone", "In"),  # In needs values
        expression("gpu", "Exists", "x"),  # Exists takes none
        expression("zone", "Like", "east"),
    ],
)
def test_invalid_requirement_makes_its_term_match_nothing(requirement):
    p = pod("p", affinity=required_terms({"matchExpressions": [requirement]}))
    assert not _fits(p)


def test_match_fields_on_metadata_name():
    pinned = pod(
        "p", affinity=required_terms({"matchFields": [expression("metadata.name", "In", "a")]})
    )
    assert _fits(pinned, name="a")
    assert not _fits(pinned, name="b")
    avoid = pod(
        "p", affinity=required_terms({"matchFields": [expression("metadata.name", "NotIn", "a")]})
    )
    assert not _fits(avoid, name="a")
    assert _fits(avoid, name="b")


def test_match_fields_on_other_keys_or_with_several_values_match_nothing():
    other = pod("p", affinity=required_terms({"matchFields": [expression("spec.x", "In", "a")]}))
    two = pod(
        "p", affinity=required_terms({"matchFields": [expression("metadata.name", "In", "a", "b")]})
    )
    assert not _fits(other, name="a")
    assert not _fits(two, name="a")


def test_terms_are_ored_and_requirements_in_a_term_are_anded():
    both = {"matchExpressions": [expression("zone", "In", "east"), expression("gpu", "Exists")]}
    one_wrong = {
        "matchExpressions": [expression("zone", "In", "east"), expression("tpu", "Exists")]
    }
    assert _fits(pod("p", affinity=required_terms(both)))
    assert not _fits(pod("p", affinity=required_terms(one_wrong)))
    assert _fits(pod("p", affinity=required_terms(one_wrong, both)))


def test_expressions_and_fields_in_one_term_must_both_hold():
    term = {
        "matchExpressions": [expression("zone", "In", "east")],
        "matchFields": [expression("metadata.name", "In", "b")],
    }
    assert not _fits(pod("p", affinity=required_terms(term)), name="a")
    assert _fits(pod("p", affinity=required_terms(term)), name="b")


def test_empty_term_and_empty_term_list_match_nothing():
    assert not _fits(pod("p", affinity=required_terms({})))
    assert not _fits(pod("p", affinity=required_terms()))


def test_node_selector_needs_every_label():
    assert _fits(pod("p", node_selector={"zone": "east", "cores": "8"}))
    assert not _fits(pod("p", node_selector={"zone": "east", "cores": "4"}))


def test_node_selector_and_affinity_must_both_match():
    p = pod(
        "p",
        node_selector={"zone": "east"},
        affinity=required_terms({"matchExpressions": [expression("tpu", "Exists")]}),
    )
    assert node_affinity(PodInfo.of(p), NodeInfo(node("a", labels=LABELS))) == MISMATCH


def test_prefilter_pins_the_union_of_named_nodes_per_term():
    daemon = required_terms({"matchFields": [expression("metadata.name", "In", "a")]})
    assert pinned_node_names(pod("p", affinity=daemon)) == {"a"}
    two_terms = required_terms(
        {"matchFields": [expression("metadata.name", "In", "a")]},
        {"matchFields": [expression("metadata.name", "In", "b")]},
    )
    assert pinned_node_names(pod("p", affinity=two_terms)) == {"a", "b"}


def test_prefilter_does_not_pin_when_a_term_names_no_node():
    mixed = required_terms(
        {"matchFields": [expression("metadata.name", "In", "a")]},
        {"matchExpressions": [expression("zone", "In", "east")]},
    )
    assert pinned_node_names(pod("p", affinity=mixed)) is None
    assert pinned_node_names(pod("p")) is None


def test_prefilter_intersects_names_within_a_term():
    conflict = required_terms(
        {
            "matchFields": [
                expression("metadata.name", "In", "a"),
                expression("metadata.name", "In", "b"),
            ]
        }
    )
    assert pinned_node_names(pod("p", affinity=conflict)) == frozenset()
