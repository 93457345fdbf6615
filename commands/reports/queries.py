"""The PromQL of the reports, with label matchers that tie every series to one environment."""

from __future__ import annotations

import re

from bot.config import Environment


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The Milvus components milvus-helm names pods after (2.5 and 2.6 charts).
MILVUS_COMPONENTS = (
    "proxy|querynode|datanode|indexnode|streamingnode|mixcoord|rootcoord|querycoord|datacoord|indexcoord|standalone"
)


class Selectors:
    """Label matchers tying series to one environment."""

    def __init__(self, env: Environment) -> None:
        self.namespace = env.prometheus_namespace
        self.instance = env.prometheus_instance

    def milvus(self, *extra: str) -> str:
        parts = []
        if self.namespace:
            parts.append(f"namespace={_quote(self.namespace)}")
        if self.instance:
            parts.append(f"app_kubernetes_io_instance={_quote(self.instance)}")
        return "{" + ",".join([*parts, *extra]) + "}"

    def pods(self, component: str | None, *extra: str) -> str:
        """For kube-state-metrics and cAdvisor series, which carry pod names, not Milvus' target labels.

        milvus-helm names pods ``<release>-milvus-<component>-...``, except when the release name
        already contains "milvus": then ``<release>-<component>-...`` (release ``milvus`` gives
        ``milvus-querynode-...``). The pattern takes both forms, and only Milvus' own components, so
        the release's etcd, MinIO or Pulsar pods are not counted as Milvus.
        """
        parts = []
        if self.namespace:
            parts.append(f"namespace={_quote(self.namespace)}")
        if self.instance:
            release = re.escape(self.instance)
            parts.append(f"pod=~{_quote(f'({release}|{release}-milvus)-({component or MILVUS_COMPONENTS})-.*')}")
        elif component:
            parts.append(f"pod=~{_quote(f'.*{component}.*')}")
        return "{" + ",".join([*parts, *extra]) + "}"

    def namespace_only(self, *extra: str) -> str:
        parts = [f"namespace={_quote(self.namespace)}"] if self.namespace else []
        return "{" + ",".join([*parts, *extra]) + "}"


def _eq(name: str, value: str) -> str:
    return f"{name}={_quote(value)}"


def _re(name: str, value: str) -> str:
    return f"{name}=~{_quote(value)}"


def _ne(name: str, value: str) -> str:
    return f"{name}!={_quote(value)}"


def _p99(metric: str, sel: str) -> str:
    return f"histogram_quantile(0.99, sum by (le)(rate({metric}_bucket{sel}[5m])))"


def _zero_if_family(expr: str, family: str) -> str:
    """``expr``, or 0 when only the label value is missing but the metric family is present."""
    return f"({expr}) or (sum({family}) * 0)"


def health_queries(env: Environment) -> dict[str, str]:
    s = Selectors(env)
    req = "milvus_proxy_req_count"
    fail = f"sum by (function_name)(rate({req}{s.milvus(_eq('status', 'fail'))}[5m]))"
    total = f"sum by (function_name)(rate({req}{s.milvus(_eq('status', 'total'))}[5m]))"
    return {
        "up": f"up{s.milvus()}",
        "nodes": f"sum by (role_name)(milvus_num_node{s.milvus()})",
        "search_qps": _zero_if_family(
            f"sum(rate({req}{s.milvus(_eq('function_name', 'Search'), _eq('status', 'success'))}[5m]))",
            f"{req}{s.milvus()}",
        ),
        "insert_qps": _zero_if_family(
            f"sum(rate({req}{s.milvus(_eq('function_name', 'Insert'), _eq('status', 'success'))}[5m]))",
            f"{req}{s.milvus()}",
        ),
        "search_p99": _p99("milvus_proxy_sq_latency", s.milvus('query_type="search"')),
        "query_p99": _p99("milvus_proxy_sq_latency", s.milvus('query_type="query"')),
        "insert_p99": _p99("milvus_proxy_mutation_latency", s.milvus('msg_type="insert"')),
        "errors": f"({fail} or {total} * 0) / {total}",
        "rate_limited": _zero_if_family(
            f"sum(rate(milvus_proxy_rate_limit_req_count{s.milvus(_eq('status', 'fail'))}[5m]))",
            f"milvus_proxy_rate_limit_req_count{s.milvus()}",
        ),
        "deny_writing": f"sum(increase(milvus_rootcoord_force_deny_writing_counter{s.milvus()}[15m]))",
        "quota_states": f"max by (quota_states)(milvus_rootcoord_quota_states{s.milvus()})",
        "queue_p99": _p99("milvus_querynode_sq_queue_latency", s.milvus()),
        "qn_lag": f"max(milvus_querynode_consume_tt_lag_ms{s.milvus()})",
        "dn_lag": f"max(milvus_datanode_consume_tt_lag_ms{s.milvus()})",
        "restarts": f"sum by (pod)(increase(kube_pod_container_status_restarts_total{s.pods(None)}[1h]))",
        "oom": (
            f"sum by (pod)(kube_pod_container_status_last_terminated_reason{s.pods(None, _eq('reason', 'OOMKilled'))})"
        ),
        "load_failures": _zero_if_family(
            f"sum(increase(milvus_querycoord_load_req_count{s.milvus(_eq('status', 'fail'))}[1h]))",
            f"milvus_querycoord_load_req_count{s.milvus()}",
        ),
    }


def latency_range_queries(env: Environment) -> dict[str, str]:
    s = Selectors(env)
    return {
        "search p99": _p99("milvus_proxy_sq_latency", s.milvus('query_type="search"')),
        "query p99": _p99("milvus_proxy_sq_latency", s.milvus('query_type="query"')),
        "insert p99": _p99("milvus_proxy_mutation_latency", s.milvus('msg_type="insert"')),
    }


def capacity_queries(env: Environment) -> dict[str, str]:
    s = Selectors(env)
    qn_pods = s.pods("querynode", 'container!=""')
    return {
        "rows_rootcoord": (
            f"max by (db_name, collection_name)(milvus_rootcoord_entity_num{s.milvus(_eq('status', 'all'))})"
        ),
        # Milvus 2.3 has no rootcoord row count; datacoord's gauge keeps stale values for a segment's
        # earlier states (Sealed stays at N after it is Flushed), so only Flushed rows are counted.
        "rows_datacoord": (
            "sum by (db_name, collection_name, collection_id)"
            f"(milvus_datacoord_stored_rows_num{s.milvus(_eq('segment_state', 'Flushed'))})"
        ),
        "binlog_bytes": f"sum(milvus_datacoord_stored_binlog_size{s.milvus()})",
        "index_bytes": f"sum(milvus_datacoord_stored_index_files_size{s.milvus()})",
        "qn_memory": f"sum by (pod)(container_memory_working_set_bytes{qn_pods})",
        "qn_limit": (
            f"sum by (pod)(kube_pod_container_resource_limits{s.pods('querynode', _eq('resource', 'memory'))})"
        ),
        "process_memory": f"sum by (instance, component)(process_resident_memory_bytes{s.milvus()})",
        "qn_loaded": f"sum by (node_id)(milvus_querynode_entity_size{s.milvus()})",
        "qn_count": f"max(milvus_querycoord_querynode_num{s.milvus()})",
        "disk_mb": f"max by (node_id)(milvus_querynode_disk_used_size{s.milvus()})",
        "disk_capacity": (
            "sum by (persistentvolumeclaim)(kubelet_volume_stats_capacity_bytes"
            f"{s.namespace_only(_re('persistentvolumeclaim', '.*querynode.*'))})"
        ),
        "segments": f"sum by (segment_state)(milvus_datacoord_segment_num{s.milvus()})",
        "index_tasks": f"sum by (task_state)(milvus_datacoord_task_count{s.milvus(_re('task_type', '.*[Ii]ndex.*'))})",
        "index_tasks_old": f"sum by (index_task_status)(milvus_datacoord_index_task_count{s.milvus()})",
        "compaction_tasks": f"sum by (status)(milvus_datacoord_compaction_task_num{s.milvus()})",
        "etcd_size": f"max(etcd_mvcc_db_total_size_in_bytes{s.namespace_only()})",
        "etcd_quota": f"max(etcd_server_quota_backend_bytes{s.namespace_only()})",
    }


def capacity_range_queries(env: Environment) -> dict[str, str]:
    q = capacity_queries(env)
    s = Selectors(env)
    return {
        "rows": f"sum({q['rows_rootcoord']}) or sum({q['rows_datacoord']})",
        "rows_by_collection": f"{q['rows_rootcoord']} or {q['rows_datacoord']}",
        "qn_memory": f"sum(container_memory_working_set_bytes{s.pods('querynode', _ne('container', ''))})",
        "process_memory": f"sum(process_resident_memory_bytes{s.milvus()})",
        "disk_mb": f"sum(milvus_querynode_disk_used_size{s.milvus()})",
        "etcd_size": q["etcd_size"],
    }
