import random

from scheduler_support import expression, infos, node, pod, required_terms

from kubeling.scheduler.algorithm import event_note, schedule_pod, unschedulable_condition
from kubeling.scheduler.filters import Diagnosis, run_filters, unschedulable_message
from kubeling.scheduler.nodeinfo import NodeInfo
from kubeling.scheduler.preemption import preemption_outcome


def _message(pod_dict, nodes):
    return schedule_pod(pod_dict, nodes, random.Random(0)).message


def test_message_counts_reasons_and_appends_preemption():
    nodes = infos(node("a", cpu="1"), node("b", ready="False"), node("c", ready="False"))
    assert _message(pod("p", cpu="2"), nodes) == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint "
        "{node.kubernetes.io/not-ready: }. preemption: 0/3 nodes are available: "
        "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for "
        "scheduling."
    )


def test_only_unresolvable_reasons_make_preemption_not_helpful_everywhere():
    nodes = infos(node("a"), node("b"), node("c"))
    assert _message(pod("p", node_selector={"disk": "ssd"}), nodes) == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )


def test_histogram_entries_sort_as_strings_so_10_comes_before_2():
    diagnosis = Diagnosis()
    for i in range(10):
        diagnosis.node_reasons[f"t{i}"] = ("node(s) were unschedulable",)
    diagnosis.node_reasons["x"] = ("Insufficient memory",)
    diagnosis.node_reasons["y"] = ("Insufficient memory",)
    assert unschedulable_message(diagnosis, 12) == (
        "0/12 nodes are available: 10 node(s) were unschedulable, 2 Insufficient memory."
    )


def test_every_reason_of_a_node_is_counted():
    full = NodeInfo(node("a", cpu="1", memory="1Gi"))
    assert _message(pod("p", cpu="2", memory="2Gi"), [full]).startswith(
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption:"
    )


def test_pinned_pod_counts_left_out_nodes_with_the_prefilter_reason():
    daemon = required_terms({"matchFields": [expression("metadata.name", "In", "b")]})
    nodes = infos(node("a"), node("b", ready="False"), node("c"))
    assert _message(pod("p", affinity=daemon), nodes) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node.kubernetes.io/not-ready: }, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )


def test_conflicting_pinned_names_fail_in_prefilter():
    conflict = required_terms(
        {
            "matchFields": [
                expression("metadata.name", "In", "a"),
                expression("metadata.name", "In", "b"),
            ]
        }
    )
    assert _message(pod("p", affinity=conflict), infos(node("a"), node("b"))) == (
        "0/2 nodes are available: pod affinity terms conflict. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    )


def test_preemption_policy_never_is_not_eligible():
    p = pod("p", cpu="8", preemptionPolicy="Never")
    assert _message(p, infos(node("a"))) == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: not eligible due to preemptionPolicy=Never."
    )


def test_lower_priority_pods_that_free_too_little_repeat_the_filter_reason():
    full = NodeInfo(node("a"), [pod("low", cpu="1", priority=0), pod("high", cpu="3", priority=10)])
    p = pod("p", cpu="2", priority=5)
    feasible, diagnosis = run_filters(p, [full])
    outcome = preemption_outcome(p, diagnosis, [full])
    assert feasible == []
    assert outcome.message == "preemption: 0/1 nodes are available: 1 Insufficient cpu."


def test_preemption_candidates_leave_the_preemption_part_out():
    full = NodeInfo(node("a"), [pod("low", cpu="3", priority=0)])
    decision = schedule_pod(pod("p", cpu="2", priority=5), [full], random.Random(0))
    assert decision.node_name is None
    assert decision.preemption_candidates == ("a",)
    assert decision.message == "0/1 nodes are available: 1 Insufficient cpu."


def test_equal_priority_pods_are_no_victims():
    full = NodeInfo(node("a"), [pod("peer", cpu="3", priority=5)])
    p = pod("p", cpu="2", priority=5)
    outcome = preemption_outcome(p, run_filters(p, [full])[1], [full])
    assert outcome.message == (
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )


def test_no_nodes_at_all():
    assert _message(pod("p"), []) == "no nodes available to schedule pods"


def test_unschedulable_condition_shape():
    assert unschedulable_condition("0/1 nodes are available: ...", "2024-05-01T10:00:00Z") == {
        "type": "PodScheduled",
        "status": "False",
        "lastProbeTime": None,
        "lastTransitionTime": "2024-05-01T10:00:00Z",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: ...",
    }


def test_event_note_is_cut_to_1024_characters():
    assert event_note("short") == "short"
    long = "x" * 2000
    assert event_note(long) == "x" * 1020 + " ..."
    assert len(event_note(long)) == 1024


def test_node_name_mismatch_message():
    assert _message(pod("p", node_name="zzz"), infos(node("a"))) == (
        "0/1 nodes are available: 1 node(s) didn't match the requested node name. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
