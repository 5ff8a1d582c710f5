"""The shipped monitoring files (issue 11): the Prometheus alerting rules
pass `promtool check rules` and their unit tests (`promtool test rules`),
and the rules, their tests and the Grafana dashboard use only the metrics
the proxy exports, with their labels and label values. Every dashboard
query is also run by promtool against series shaped like the proxy's, and
must return data.

METRICS below is the list of what /metrics exports. When
SMTP_TLS_PROXY_METRICS_URL names a running proxy's /metrics (for example
http://127.0.0.1:9425/metrics), the exposition is compared with it too.
"""
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROMETHEUS_DIR = os.path.join(ROOT, "configs", "prometheus")
RULES = os.path.join(PROMETHEUS_DIR, "smtp-tls-proxy.rules.yml")
RULES_TEST = os.path.join(PROMETHEUS_DIR, "smtp-tls-proxy.rules.test.yml")
DASHBOARD = os.path.join(ROOT, "configs", "grafana", "smtp-tls-proxy.json")
PROMTOOL_TIMEOUT = 120

TLS = ("none", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
SCOPE = ("global", "private", "loopback")
# What the proxy exports: name -> (type, {label: allowed values, or None
# for free-form values such as listener names}).
METRICS = {
    "smtp_tls_proxy_connections_total": ("counter", {"listener": None, "tls": TLS, "scope": SCOPE}),
    "smtp_tls_proxy_sessions_active": ("gauge", {"listener": None}),
    "smtp_tls_proxy_tls_handshakes_total": ("counter", {"listener": None, "version": TLS[1:], "group": None}),
    "smtp_tls_proxy_tls_handshake_failures_total": ("counter", {"listener": None, "reason": (
        "timeout", "no_shared_cipher", "protocol_version", "alert_received", "closed",
        "no_client_hello", "other")}),
    "smtp_tls_proxy_starttls_total": ("counter", {"listener": None, "event": (
        "offered", "used", "withheld", "failed")}),
    "smtp_tls_proxy_backend_up": ("gauge", {"backend": None}),
    "smtp_tls_proxy_backend_connects_total": ("counter", {"backend": None}),
    "smtp_tls_proxy_backend_failures_total": ("counter", {"backend": None, "reason": (
        "refused", "timeout", "closed", "greeting_4xx", "greeting_5xx")}),
    "smtp_tls_proxy_redis_clients": ("gauge", {}),
    "smtp_tls_proxy_redis_up": ("gauge", {}),
    "smtp_tls_proxy_redis_lookups_total": ("counter", {"result": (
        "sent", "remembered", "late", "not_asked")}),
    "smtp_tls_proxy_redis_errors_total": ("counter", {}),
    "smtp_tls_proxy_redis_reconnects_total": ("counter", {}),
    "smtp_tls_proxy_starttls_memory_entries": ("gauge", {}),
    "smtp_tls_proxy_starttls_memory_max_entries": ("gauge", {}),
    "smtp_tls_proxy_starttls_memory_evictions_total": ("counter", {}),
    "smtp_tls_proxy_messages_total": ("counter", {"listener": None, "tls": TLS, "scope": SCOPE,
                                                  "result": ("accepted", "rejected", "aborted")}),
    "smtp_tls_proxy_message_bytes_total": ("counter", {"listener": None, "tls": TLS, "scope": SCOPE,
                                                       "result": ("accepted", "rejected", "aborted")}),
    "smtp_tls_proxy_messages_by_country_total": ("counter", {"country": None, "tls": TLS}),
    "smtp_tls_proxy_backend_errors_total": ("counter", {"kind": ("connect", "timeout", "closed", "protocol")}),
    "smtp_tls_proxy_refusals_total": ("counter", {"reason": (
        "max_connections", "max_per_client", "line_too_long", "xclient", "bdat", "starttls_injection",
        "too_many_errors", "pregreet", "sync_violation", "proxy_protocol")}),
    "smtp_tls_proxy_reloads_total": ("counter", {"result": ("ok", "failed")}),
    "smtp_tls_proxy_last_reload_success_timestamp_seconds": ("gauge", {}),
    "smtp_tls_proxy_certificate_not_after_timestamp_seconds": ("gauge", {"certificate": None,
                                                                         "key_type": ("ecdsa", "rsa")}),
    "smtp_tls_proxy_build_info": ("gauge", {"version": None, "tls_library": None}),
}
# Only exported when a GeoIP database is loaded.
OPTIONAL_METRICS = {"smtp_tls_proxy_messages_by_country_total",
                    # only with [starttls_memory] redis
                    "smtp_tls_proxy_redis_clients", "smtp_tls_proxy_redis_up",
                    "smtp_tls_proxy_redis_lookups_total", "smtp_tls_proxy_redis_errors_total",
                    "smtp_tls_proxy_redis_reconnects_total"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
ALERTS = {"SmtpTlsProxyCertificateExpiresSoon", "SmtpTlsProxyTlsHandshakeFailures",
          "SmtpTlsProxyBackendUnreachable", "SmtpTlsProxyEncryptedShareDropped",
          "SmtpTlsProxyEncryptedShareLow"}

# Identifiers that look like the proxy's metrics (wider than the names'
# own [a-z_]+, so that a misspelt name with a digit is caught too).
METRIC_NAME = re.compile(r"\bsmtp_tls_proxy_[A-Za-z0-9_:]*")
SELECTOR = re.compile(r"\b(smtp_tls_proxy_[A-Za-z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
# Grafana's variables and the values the dashboard's queries run with here.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$instance": ".*", "$listener": ".*"}


def promtool():
    path = shutil.which("promtool")
    if path is None:
        raise AssertionError("promtool not found: install the Debian package prometheus (.ci/install-deps)")
    return path


def run_promtool(*args, cwd=None):
    r = subprocess.run([promtool()] + list(args), capture_output=True, text=True, cwd=cwd,
                       timeout=PROMTOOL_TIMEOUT)
    return r.returncode, (r.stdout + r.stderr).strip()


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rule_exprs(text):
    """[(alert name, expr)] of a rules file written as this project writes
    it: `- alert: NAME`, then `expr: |` and a more indented block (or an
    expression on the same line)."""
    out = []
    lines = text.split("\n")
    alert = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- (?:alert|record):\s*(\S+)", line)
        if m:
            alert = m.group(1)
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m:
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest in ("|", "|-", ">", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or
                                          len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                out.append((alert, "\n".join(block).strip()))
                continue
            out.append((alert, rest.strip("'\"")))
        i += 1
    return out


def dashboard_queries(dash):
    """[(where, expr, panel or None, target or None)] for every PromQL
    query in the dashboard: panel targets and template variables."""
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            out.append(("panel %r target %s" % (p.get("title"), t.get("refId")), t.get("expr", ""), p, t))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q
            out.append(("variable $%s" % v["name"], q, None, None))
    return out


def grafana_to_promql(expr):
    """The PromQL a Grafana query runs as: variables replaced, and a
    label_values(SELECTOR, LABEL) variable query reduced to its selector."""
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", expr, re.S)
    if m:
        expr = m.group(1)
    return expr


def labels_of(names):
    labels = set(TARGET_LABELS)
    for n in names:
        if n in METRICS:
            labels |= set(METRICS[n][1])
    return labels


class MetricUse:
    """Checks one text's use of the metrics; collects problems."""

    def __init__(self):
        self.problems = []

    def names(self, where, text):
        found = set(METRIC_NAME.findall(text))
        for n in sorted(found - set(METRICS)):
            self.problems.append("%s: unknown metric %s" % (where, n))
        return found

    def selectors(self, where, text):
        """name{matchers}: known label names, allowed values for = and !=."""
        for name, body in SELECTOR.findall(text):
            if name not in METRICS:
                continue
            allowed = METRICS[name][1]
            pos = 0
            body = body.strip()
            while pos < len(body):
                m = MATCHER.match(body, pos)
                if not m:
                    self.problems.append("%s: cannot read matchers {%s} of %s" % (where, body, name))
                    break
                pos = m.end()
                label, op, value = m.groups()
                if label not in allowed and label not in TARGET_LABELS:
                    self.problems.append("%s: %s has no label %s" % (where, name, label))
                elif op in ("=", "!=") and allowed.get(label) and value not in allowed[label]:
                    self.problems.append("%s: %s{%s} is never %r (values: %s)"
                                         % (where, name, label, value, ", ".join(allowed[label])))

    def grouping(self, where, expr, names):
        """Labels in by (...), without (...), on (...): labels of the
        metrics this expression uses."""
        known = labels_of(names)
        for clause in GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in clause.split(","))):
                if label not in known:
                    self.problems.append("%s: groups by %s, which none of %s has"
                                         % (where, label, ", ".join(sorted(names))))


class RulesTest(unittest.TestCase):

    def test_promtool_check_rules(self):
        code, out = run_promtool("check", "rules", RULES)
        self.assertEqual(code, 0, "promtool check rules %s failed:\n%s" % (RULES, out))
        self.assertIn("SUCCESS: %d rules found" % len(ALERTS), out)

    def test_promtool_test_rules(self):
        code, out = run_promtool("test", "rules", os.path.basename(RULES_TEST), cwd=PROMETHEUS_DIR)
        self.assertEqual(code, 0, "promtool test rules %s failed:\n%s" % (RULES_TEST, out))
        self.assertIn("SUCCESS", out)

    def test_every_alert_is_tested_firing_and_quiet(self):
        exprs = rule_exprs(read(RULES))
        self.assertEqual({a for a, _ in exprs}, ALERTS)
        tests = read(RULES_TEST)
        cases = re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*(\[\])?", tests)
        for alert in sorted(ALERTS):
            kinds = {bool(empty) for name, empty in cases if name == alert}
            self.assertIn(False, kinds, "%s: no unit test where it fires" % alert)
            self.assertIn(True, kinds, "%s: no unit test where it must not fire yet" % alert)

    def test_rules_use_only_exported_metrics(self):
        use = MetricUse()
        text = read(RULES)
        use.names("rules", text)
        use.selectors("rules", text)
        for alert, expr in rule_exprs(text):
            names = use.names(alert, expr)
            self.assertTrue(names, "%s: its expression uses no smtp_tls_proxy_ metric" % alert)
            use.grouping(alert, expr, names)
        self.assertEqual(use.problems, [], "\n".join(use.problems))

    def test_rule_tests_feed_series_shaped_like_the_proxy_s(self):
        """Input series of the unit tests: known metrics, with exactly the
        metric's labels (and job, instance), and allowed values."""
        use = MetricUse()
        text = read(RULES_TEST)
        use.names("rule tests", text)
        series = re.findall(r"series:\s*'([^']*)'", text)
        self.assertTrue(series)
        for s in series:
            m = re.fullmatch(r"(\w+)\{(.*)\}", s)
            self.assertTrue(m, "cannot read series %s" % s)
            name, body = m.groups()
            if name not in METRICS:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', body))
            want = set(METRICS[name][1]) | TARGET_LABELS
            if set(labels) != want:
                use.problems.append("%s: labels %s, the proxy exports %s"
                                    % (s, ", ".join(sorted(labels)), ", ".join(sorted(want))))
            use.selectors("rule tests", s)
        self.assertEqual(use.problems, [], "\n".join(use.problems))


class DashboardTest(unittest.TestCase):

    def setUp(self):
        self.text = read(DASHBOARD)
        self.dash = json.loads(self.text)
        self.queries = dashboard_queries(self.dash)

    def test_dashboard_uses_only_exported_metrics(self):
        use = MetricUse()
        used = use.names("dashboard", self.text)
        for where, expr, _, _ in self.queries:
            names = use.names(where, expr)
            if not names:
                use.problems.append("%s: uses no smtp_tls_proxy_ metric: %s" % (where, expr))
            use.selectors(where, expr)
            use.grouping(where, expr, names)
        self.assertEqual(use.problems, [], "\n".join(use.problems))
        # And it shows every one of them.
        self.assertEqual(sorted(set(METRICS) - used), [], "metrics the dashboard does not show")

    def test_dashboard_structure(self):
        d = self.dash
        for key in ("uid", "title", "panels", "templating", "schemaVersion"):
            self.assertIn(key, d)
        variables = {v["name"] for v in d["templating"]["list"]}
        self.assertIn("datasource", variables)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are not unique")
        cells = {}
        for p in d["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells, "%r overlaps %r" % (p["title"], cells.get((x, y))))
                    cells[(x, y)] = p["title"]
            if p["type"] == "row":
                continue
            self.assertEqual(p.get("datasource"), {"type": "prometheus", "uid": "${datasource}"}, p["title"])
            self.assertTrue(p.get("targets"), "%r has no query" % p["title"])
        for where, expr, panel, target in self.queries:
            for var in re.findall(r"\$\{?(\w+)", expr):
                self.assertTrue(var.startswith("__") or var in variables,
                                "%s: undefined variable $%s" % (where, var))
            if target is None:
                continue
            # A legend {{label}} must be a label the query keeps.
            kept = set()
            for clause in GROUPING.findall(expr):
                kept |= {x.strip() for x in clause.split(",")}
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                self.assertIn(label, kept, "%s: legend {{%s}} but the query keeps only %s"
                              % (where, label, sorted(kept)))

    def test_dashboard_queries_return_data(self):
        """Each query, its variables replaced, runs in promtool against
        every label combination the proxy exports, and returns data: an
        alert absent(QUERY) per query, which must not fire."""
        alerts, names = [], {}
        for n, (where, expr, _, _) in enumerate(self.queries):
            name = "DashboardQuery%d" % n
            names[name] = where
            alerts.append({"alert": name, "expr": "absent(%s)" % grafana_to_promql(expr)})
        series = []
        for metric, (mtype, labels) in sorted(METRICS.items()):
            free = {"listener": "smtp", "group": "X25519", "country": "DE", "certificate": "mx.example.test",
                    "backend": "127.0.0.1:10026",
                    "version": "1.0", "tls_library": "BoringSSL"}
            enumerated = sorted(k for k, v in labels.items() if v)
            for values in itertools.product(*(labels[k] for k in enumerated)):
                ls = {k: free[k] for k, v in labels.items() if not v}
                if metric == "smtp_tls_proxy_tls_handshakes_total":
                    ls.pop("version", None)
                ls.update(zip(enumerated, values))
                ls.update(job="smtp-tls-proxy", instance="mx.example.test:9425")
                sel = "%s{%s}" % (metric, ", ".join('%s="%s"' % kv for kv in sorted(ls.items())))
                if mtype == "counter":
                    vals = "0+1x120"
                elif metric == "smtp_tls_proxy_certificate_not_after_timestamp_seconds":
                    vals = "2000000000x120"
                else:
                    vals = "1x120"
                series.append({"series": sel, "values": vals})
        tmp = tempfile.mkdtemp(prefix="stp-monitoring-")
        self.addCleanup(shutil.rmtree, tmp, True)
        # JSON is YAML: promtool reads these as they are.
        with open(os.path.join(tmp, "dashboard.rules.yml"), "w") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": alerts}]}, f, indent=1)
        with open(os.path.join(tmp, "dashboard.test.yml"), "w") as f:
            json.dump({"rule_files": ["dashboard.rules.yml"], "evaluation_interval": "1m",
                       "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [
                           {"eval_time": "90m", "alertname": a["alert"], "exp_alerts": []}
                           for a in alerts]}]}, f, indent=1)
        legend = "\n".join("  %s: %s" % kv for kv in names.items())
        code, out = run_promtool("check", "rules", "dashboard.rules.yml", cwd=tmp)
        self.assertEqual(code, 0, "a dashboard query is not valid PromQL:\n%s\n%s" % (out, legend))
        code, out = run_promtool("test", "rules", "dashboard.test.yml", cwd=tmp)
        self.assertEqual(code, 0, "dashboard queries that return nothing (alert name = query):\n%s\n%s"
                         % (out, legend))


def parse_exposition(text):
    """{name: type} from # TYPE lines, and [(name, {label: value})] samples."""
    types, samples = {}, []
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+", line)
        if m:
            samples.append((m.group(1), dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))))
    return types, samples


class ExpositionCheck:
    """Compares a /metrics exposition with METRICS."""

    def check_exposition(self, text):
        types, samples = parse_exposition(text)
        ours = {n: t for n, t in types.items() if n.startswith("smtp_tls_proxy_")}
        problems = []
        for n in sorted(set(ours) - set(METRICS)):
            problems.append("/metrics exports %s, which the dashboard and rules do not know" % n)
        for n in sorted(set(METRICS) - set(ours) - OPTIONAL_METRICS):
            problems.append("/metrics does not export %s" % n)
        for n in sorted(set(ours) & set(METRICS)):
            if ours[n] != METRICS[n][0]:
                problems.append("%s is a %s, expected a %s" % (n, ours[n], METRICS[n][0]))
        for n, labels in samples:
            if n not in METRICS:
                continue
            allowed = METRICS[n][1]
            if set(labels) != set(allowed):
                problems.append("%s has labels %s, expected %s" % (n, sorted(labels), sorted(allowed)))
            for k, v in labels.items():
                if allowed.get(k) and v not in allowed[k]:
                    problems.append("%s{%s=%r}: not one of %s" % (n, k, v, ", ".join(allowed[k])))
        self.assertEqual(problems, [], "\n".join(problems))


METRICS_URL = os.environ.get("SMTP_TLS_PROXY_METRICS_URL")

if METRICS_URL:
    class LiveMetricsTest(ExpositionCheck, unittest.TestCase):
        """Only when SMTP_TLS_PROXY_METRICS_URL names a running proxy."""

        def test_live_metrics_match_the_list(self):
            with urllib.request.urlopen(METRICS_URL, timeout=10) as r:
                text = r.read().decode("utf-8")
            self.check_exposition(text)
            r = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=PROMTOOL_TIMEOUT)
            self.assertEqual(r.returncode, 0, "promtool check metrics:\n%s%s" % (r.stdout, r.stderr))


if __name__ == "__main__":
    unittest.main()
