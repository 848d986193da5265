"""Every refused input: exit code 1 and the ``path:line:col: error:`` line that names the place."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import build_file_tree, run_meshgen

ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  ingress: {selector: {istio: ingressgateway}}
"""

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata:
  name: web
  namespace: shop
spec:
  service: {host: web, port: 80}
  versions:
    v1: {labels: {version: v1}}
    v2: {labels: {version: v2}}
  routes:
    - name: default
      to: {v1: 100}
"""


def repo_with(tmp_path: Path, files: dict[str, str]) -> Path:
    base = {"environments/dev.yaml": ENV, "apps/web.yaml": APP}
    base.update(files)
    return build_file_tree(tmp_path, base)


def refused(tmp_path: Path, files: dict[str, str], command: str = "validate") -> list[str]:
    """Run ``meshgen COMMAND``; assert exit 1 and return the error lines."""
    proc = run_meshgen(command, cwd=repo_with(tmp_path, files))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert lines, proc.stderr
    return lines


def app(routes: str, extra: str = "") -> str:
    """APP with its routes replaced by ``routes`` (YAML list items, dedented) plus ``extra`` spec keys."""
    head = APP.split("  routes:")[0]
    return head + textwrap.indent(textwrap.dedent(extra), "  ") + "  routes:\n" + textwrap.indent(textwrap.dedent(routes), "    ")


def test_valid_minimal_repo_passes(tmp_path: Path) -> None:
    proc = run_meshgen("validate", cwd=repo_with(tmp_path, {}))
    assert proc.returncode == 0, proc.stderr


def test_weights_must_sum_to_100(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: {v1: 60, v2: 30}\n")})
    assert lines == ["apps/web.yaml:13:11: error: weights of route 'default' sum to 90, not 100 "
                     "(Istio would normalise them silently) (hint: make the integer weights add up to exactly 100)"]


def test_weights_must_be_0_to_100(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: {v1: 120, v2: -20}\n")})
    assert any(line.startswith("apps/web.yaml:13:") and "120 is greater than the maximum of 100" in line for line in lines)


def test_weights_must_be_integers(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: {v1: 50.5, v2: 49.5}\n")})
    assert any(line.startswith("apps/web.yaml:13:") and "50.5 is not an integer" in line for line in lines)


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: {v1: 90, v3: 10}\n")})
    assert lines[0].startswith("apps/web.yaml:13:20: error: route 'default' refers to version 'v3', which is not in spec.versions (v1, v2)")


def test_shorthand_to_with_unknown_version(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: v9\n")})
    assert lines[0].startswith("apps/web.yaml:13:11: error: route 'default' refers to version 'v9'")


def test_catch_all_must_be_last(tmp_path: Path) -> None:
    routes = "- name: default\n  to: v1\n- name: beta\n  when: header \"x-beta\" present\n  to: v2\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines[0].startswith("apps/web.yaml:14:13: error: route 'beta' comes after route 'default', which has no `when`")


def test_two_catch_alls_are_refused(tmp_path: Path) -> None:
    routes = "- name: a\n  to: v1\n- name: b\n  to: v2\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines[0].startswith("apps/web.yaml:14:13: error: route 'b' comes after route 'a'")


def test_duplicate_route_names(tmp_path: Path) -> None:
    routes = "- name: a\n  when: uri prefix \"/x\"\n  to: v1\n- name: a\n  to: v2\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines[0].startswith("apps/web.yaml:15:13: error: route name 'a' is used twice")


@pytest.mark.parametrize("value, message", [
    ("500us", "'500us' is shorter than 1ms, which Istio rejects"),
    ("1.5ms", "'1.5ms' is not a whole number of milliseconds, which istiod rejects"),
    ("5 seconds", "'5 seconds' is not a duration"),
])
def test_durations_in_istio_format(tmp_path: Path, value: str, message: str) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": app(f"- name: default\n  to: v1\n  timeout: {value}\n")})
    assert lines[0].startswith("apps/web.yaml:14:16: error: ") and message in lines[0]


def test_durations_inside_istio_traffic_policy(tmp_path: Path) -> None:
    extra = "trafficPolicy:\n  outlierDetection: {interval: 0.5ms, consecutive5xxErrors: 1}\n"
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: v1\n", extra)})
    assert lines == ["apps/web.yaml:12:34: error: trafficPolicy.outlierDetection.interval: '0.5ms' is shorter "
                     "than 1ms, which Istio rejects"]


def test_fault_without_percentage_is_refused(tmp_path: Path) -> None:
    routes = "- name: default\n  to: v1\n  fault: {delay: {fixedDelay: 2s}}\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines == ["apps/web.yaml:14:15: error: route 'default': fault.delay has no percentage, so Istio injects "
                     "it into no request (hint: add `percentage: {value: 100}` to fault every request, or a smaller value)"]


def test_retries_attempts_zero_with_other_fields(tmp_path: Path) -> None:
    routes = "- name: default\n  to: v1\n  retries: {attempts: 0, perTryTimeout: 2s}\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines[0].startswith("apps/web.yaml:14:27: error: route 'default': retries.attempts is 0, which disables "
                               "retries, but perTryTimeout is also set")


def test_mirror_percent_0_to_100(tmp_path: Path) -> None:
    routes = "- name: default\n  to: v1\n  mirror: {version: v2, percent: 150}\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines[0].startswith("apps/web.yaml:14:38: error: ") and "150 is greater than the maximum of 100" in lines[0]


def test_mirror_of_unknown_version(tmp_path: Path) -> None:
    routes = "- name: default\n  to: v1\n  mirror: {version: v7}\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines[0].startswith("apps/web.yaml:14:25: error: route 'default' mirror refers to version 'v7'")


def test_unknown_field_with_did_you_mean(tmp_path: Path) -> None:
    routes = "- name: default\n  to: v1\n  timout: 5s\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines == ["apps/web.yaml:14:7: error: unknown field 'timout' in spec.routes[0] (hint: did you mean 'timeout'?)"]


def test_unknown_field_inside_istio_traffic_policy(tmp_path: Path) -> None:
    extra = "trafficPolicy:\n  tls: {mood: ISTIO_MUTUAL}\n"
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: v1\n", extra)})
    assert lines == ["apps/web.yaml:12:11: error: unknown field 'mood' in spec.trafficPolicy.tls (hint: did you mean 'mode'?)"]


def test_all_errors_of_a_run_are_reported_at_once(tmp_path: Path) -> None:
    bad_web = app("- name: default\n  to: {v1: 60, v2: 30}\n")
    bad_api = APP.replace("name: web", "name: api").replace("host: web", "host: api").replace("to: {v1: 100}", "to: v5")
    lines = refused(tmp_path, {"apps/web.yaml": bad_web, "apps/api.yaml": bad_api})
    assert [line.split(":")[0] for line in lines] == ["apps/api.yaml", "apps/web.yaml"]


def test_two_apps_claiming_one_host_names_both_files(tmp_path: Path) -> None:
    other = APP.replace("name: web", "name: shop").replace("host: web", "host: web.shop.svc.cluster.local")
    lines = refused(tmp_path, {"apps/shop.yaml": other})
    assert lines == ["apps/web.yaml:7:19: error: host 'web.shop.svc.cluster.local' is claimed by app 'web' and by app "
                     "'shop' (apps/shop.yaml:7:19) in environment 'dev' (hint: each host may belong to one app per environment)"]


def test_two_apps_exposing_one_host_per_environment_override(tmp_path: Path) -> None:
    other = APP.replace("name: web", "name: api").replace("host: web", "host: api")
    env = ENV + "  apps:\n    web: {spec: {expose: {hosts: [shop.example.com]}}}\n    api: {spec: {expose: {hosts: [shop.example.com]}}}\n"
    lines = refused(tmp_path, {"apps/api.yaml": other, "environments/dev.yaml": env})
    assert len(lines) == 1
    assert lines[0].startswith("environments/dev.yaml:7:35: error: ") and "host 'shop.example.com' is claimed by app 'web' and by app 'api' (environments/dev.yaml:8:35)" in lines[0]


def test_rollout_versions_must_exist(tmp_path: Path) -> None:
    extra = "rollout: {stable: v1, canary: v3, route: default}\n"
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: v1\n", extra)})
    assert lines == ["apps/web.yaml:11:33: error: rollout.canary refers to version 'v3', which is not in spec.versions "
                     "(v1, v2) (hint: add it under spec.versions or use one of the listed versions)"]


def test_rollout_route_must_exist(tmp_path: Path) -> None:
    extra = "rollout: {stable: v1, canary: v2, route: main}\n"
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: v1\n", extra)})
    assert lines[0].startswith("apps/web.yaml:11:44: error: rollout.route 'main' is not a route of this app")


def test_template_syntax_error_is_placed_not_a_traceback(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"templates/destinationrule.yaml.j2": "# own template\n{{ name | q }\n"})
    assert lines == ["templates/destinationrule.yaml.j2:2:1: error: template syntax error: unexpected '}'"]


def test_condition_errors_come_with_the_apps_other_errors(tmp_path: Path) -> None:
    routes = """\
        - name: beta
          when: header "x" exakt "1"
          to: {v1: 50, v2: 40}
        - name: default
          to: v1
        """
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert lines == [
        "apps/web.yaml:13:24: error: in condition, column 12: expected a matcher ('exact', 'prefix', 'regex' "
        "or 'present'), found 'exakt' (hint: did you mean 'exact'?)",
        "apps/web.yaml:14:11: error: weights of route 'beta' sum to 90, not 100 (Istio would normalise them "
        "silently) (hint: make the integer weights add up to exactly 100)"]


def test_custom_metric_query_must_render(tmp_path: Path) -> None:
    """A typo in a query template is refused by validate, not first met by the bot mid-rollout."""
    extra = """\
        rollout:
          stable: v1
          canary: v2
          route: default
          policy: metric
          analysis:
            metrics:
              - {name: errors, query: 'sum(rate(x{v="{{ versoin }}"}[{{ interval }}]))', max: 1}
        """
    lines = refused(tmp_path, {"apps/web.yaml": app("- name: default\n  to: v1\n", extra)})
    assert lines == ["apps/web.yaml:18:33: error: query of metric 'errors': 'versoin' is undefined "
                     "(hint: a query may use app, namespace, service, version, interval and env)"]


def test_name_must_match_file_stem(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": APP.replace("name: web", "name: webapp")})
    assert lines == ["apps/web.yaml:4:9: error: metadata.name 'webapp' does not match the file name 'web' "
                     "(hint: rename the file to webapp.yaml or set metadata.name: web)"]


def test_name_must_be_dns_1123_label(tmp_path: Path) -> None:
    text = APP.replace("name: web", "name: Web_App")
    lines = refused(tmp_path, {"apps/Web_App.yaml": text, "apps/web.yaml": APP})
    assert lines[0] == ("apps/Web_App.yaml:4:9: error: metadata.name: 'Web_App' is not a DNS-1123 label: "
                        "lower-case letters, digits and '-', starting and ending with a letter or digit "
                        "(hint: use 'web-app', and name the file web-app.yaml to match)")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    text = APP.replace("  namespace: shop\n", "  namespace: shop\n  namespace: other\n")
    lines = refused(tmp_path, {"apps/web.yaml": text})
    assert lines == ["apps/web.yaml:6:3: error: duplicate key 'namespace' (first defined at line 5) (hint: remove one of the two)"]


def test_alias_expansion_bomb_is_refused(tmp_path: Path) -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        bomb += f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
    lines = refused(tmp_path, {"apps/web.yaml": APP + "x-bomb:\n" + "".join("  " + l + "\n" for l in bomb.splitlines())})
    assert len(lines) == 1 and lines[0].startswith("apps/web.yaml:") and "expands to more than 100000 nodes" in lines[0]


def test_non_mapping_document_is_refused(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": "- just\n- a list\n"})
    assert lines == ["apps/web.yaml:1:1: error: expected a mapping at the top of the file, found a list"]


def test_yaml_syntax_error_has_a_place(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": APP.replace("{host: web, port: 80}", "{host: web, port: 80")})
    assert lines[0].startswith("apps/web.yaml:8:") and "invalid YAML" in lines[0]


def test_override_errors_point_into_the_environment_file(tmp_path: Path) -> None:
    env = ENV + "  apps:\n    web: {spec: {routes: [{name: default, to: {v1: 50}}]}}\n"
    lines = refused(tmp_path, {"environments/dev.yaml": env})
    assert lines[0].startswith("environments/dev.yaml:7:47: error: weights of route 'default' sum to 50")


def test_override_of_unknown_app(tmp_path: Path) -> None:
    env = ENV + "  apps:\n    wbe: {spec: {}}\n"
    lines = refused(tmp_path, {"environments/dev.yaml": env})
    assert lines == ["environments/dev.yaml:7:5: error: override for unknown app 'wbe' (hint: did you mean 'web'?)"]


def test_override_null_deletes_a_key(tmp_path: Path) -> None:
    text = app("- name: default\n  to: v1\n", "expose: {hosts: [web.example.com]}\n")
    env = ENV + "  apps:\n    web: {spec: {expose: null}}\n"
    repo = repo_with(tmp_path, {"apps/web.yaml": text, "environments/dev.yaml": env})
    run_meshgen("render", cwd=repo, check=True)
    assert not (repo / "rendered/dev/shop/web/gateway.yaml").exists()


def test_exposed_app_needs_an_ingress(tmp_path: Path) -> None:
    text = app("- name: default\n  to: v1\n", "expose: {hosts: [web.example.com]}\n")
    env = ENV.replace("  ingress: {selector: {istio: ingressgateway}}\n", "  cluster: {name: dev}\n")
    lines = refused(tmp_path, {"apps/web.yaml": text, "environments/dev.yaml": env})
    assert lines[0].startswith("apps/web.yaml:11:3: error: app 'web' is exposed but environment 'dev' has no spec.ingress.selector")


def test_several_documents_in_one_file(tmp_path: Path) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": APP + "---\nkind: App\n"})
    assert lines[0].startswith("apps/web.yaml:15:1: error: several YAML documents in one file")


def test_injection_through_a_string_value_stays_one_string(tmp_path: Path) -> None:
    """A value with quotes, newlines and YAML structure reaches the output as one string."""
    evil = 'x\\"\\n- destination: {host: evil}\\n  weight: 100\\n#'
    routes = f'- name: default\n  to: v1\n  retries: {{attempts: 2, retryOn: "{evil}"}}\n'
    repo = repo_with(tmp_path, {"apps/web.yaml": app(routes)})
    run_meshgen("render", cwd=repo, check=True)
    import yaml
    vs = yaml.safe_load((repo / "rendered/dev/shop/web/virtualservice.yaml").read_text())
    route = vs["spec"]["http"][0]
    assert route["retries"]["retryOn"] == 'x"\n- destination: {host: evil}\n  weight: 100\n#'
    assert [d["destination"]["subset"] for d in route["route"]] == ["v1"]


def test_lookahead_regex_is_refused_at_its_place(tmp_path: Path) -> None:
    routes = "- name: internal\n  when: header \"x-user\" regex \"^(?!internal).*$\"\n  to: v2\n- name: default\n  to: v1\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert len(lines) == 1
    assert lines[0].startswith("apps/web.yaml:13:35: error: in condition, column 23: ")
    assert "is not an RE2 regex" in lines[0] and "no lookahead, lookbehind or backreferences" in lines[0]


def test_condition_syntax_error_points_inside_the_when_string(tmp_path: Path) -> None:
    routes = "- name: beta\n  when: 'header \"x-beta\" exact'\n  to: v2\n- name: default\n  to: v1\n"
    lines = refused(tmp_path, {"apps/web.yaml": app(routes)})
    assert len(lines) == 1
    # the text starts at column 14 (after the quote); the missing value is at its column 22
    assert lines[0].startswith("apps/web.yaml:13:35: error: in condition, column 22: expected the exact value")


def test_injection_through_a_header_value_stays_one_string(tmp_path: Path) -> None:
    """A header value with quotes, a newline and `- destination:` stays one match string."""
    when = r'"header \"x-evil\" exact \"a\\\"\n- destination: {host: evil}\""'  # YAML double-quoted
    routes = f"- name: beta\n  when: {when}\n  to: v2\n- name: default\n  to: v1\n"
    repo = repo_with(tmp_path, {"apps/web.yaml": app(routes)})
    run_meshgen("render", cwd=repo, check=True)
    import yaml
    vs = yaml.safe_load((repo / "rendered/dev/shop/web/virtualservice.yaml").read_text())
    beta = vs["spec"]["http"][0]
    assert beta["match"] == [{"headers": {"x-evil": {"exact": 'a"\n- destination: {host: evil}'}}}]
    assert [r["destination"]["subset"] for r in beta["route"]] == ["v2"]
    assert len(vs["spec"]["http"]) == 2


def test_misspelt_route_name_in_an_override_gets_a_hint(tmp_path: Path) -> None:
    env = ENV + "  apps:\n    web: {spec: {routes: [{name: defualt, to: v2}]}}\n"
    lines = refused(tmp_path, {"environments/dev.yaml": env})
    assert lines == ["environments/dev.yaml:7:34: error: route 'defualt' comes after route 'default', which has no "
                     "`when` and so matches every request: it can never be reached (hint: did you mean route "
                     "'default'? An environment override with a new route name adds a route at the end)"]
