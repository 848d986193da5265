"""``meshgen report``: a static site drawn from git, checked in a real headless Chromium.

The repository's history is made by the bot's own code (decision, status file, commit
message) and the real steering commands; the site is written by the real command line with
a backtest against a real Prometheus serving a filled history. Chromium (Debian's
``chromium``, driven by Playwright) opens every page from disk: no console error, no request
that is not a file, the chart's points are the history's, a click on a point opens its
commit, and a screenshot of each page is saved.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from generator.bot import bot
from generator.render import output, render
from generator.rollout import decision
from generator.rollout.decision import Check, Rollout, Verdict
from generator.spec import status as status_file
from tests.conftest import ROOT, build_file_tree, run_meshgen
from tests.promfixtures import HISTORY_START as S

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BOOKS = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: books, namespace: mesh}
spec:
  service: {host: books, port: 80}
  versions: {v1: {labels: {version: v1}}, v2: {labels: {version: v2}}}
  routes:
    - {name: jason, when: 'header "end-user" exact "jason"', to: v2}
    - {name: default, to: v1, mirror: {version: v2, percent: 5}}
  rollout:
    stable: v1
    canary: v2
    route: default
    steps: [10, 25, 50, 100]
    interval: 5m
    analysis: {failureLimit: 2, metrics: [{name: request-duration-p99, max: 500, dryRun: true}]}
"""
REVIEWS = BOOKS.replace("books", "reviews").replace("v2", "v3")
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec: {{prometheus: {{url: "{url}"}}}}
"""
PASS = Check(Verdict.PASS, {"requests": 9000.0, "request-success-rate": 1.0, "request-duration-p99": 24.5},
             "all metrics within bounds", {"request-duration-p99": (Verdict.PASS, "within bounds")})
FAIL = Check(Verdict.FAIL, {"requests": 9000.0, "request-success-rate": 0.82, "request-duration-p99": 24.5},
             "request-success-rate 0.82 < min 0.99")


def git(cwd, *args, when=None, author=None):
    env = dict(os.environ)
    if when:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    if author:
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = author
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def bot_commit(work: Path, app: str, rollout: Rollout, check: Check | None, minute: int) -> None:
    """What the bot's tick commits for ``check`` at S + ``minute``: the decision, the status
    file, the re-rendered output and the commit message."""
    now = S + timedelta(minutes=minute)
    rel = f"status/dev/{app}.yaml"
    old = status_file.load_status(work, rel)
    made = decision.decide(rollout, "dev", old, check, now)
    (work / "status/dev").mkdir(parents=True, exist_ok=True)
    output.atomic_write(work / rel, status_file.dump_status("dev", app, made.status))
    output.write_rendering(work, render.render_repo(work))
    git(work, "add", "-A")
    git(work, "commit", "-qm", bot.commit_message("dev", app, old, made, 2), when=now, author="meshgen-bot")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, history_prometheus):
    """books: start at S+10m, two steps, a failed check, a step to 100 %, success; reviews:
    started at S+40m and still progressing at 25 %."""
    work = build_file_tree(tmp_path_factory.mktemp("report") / "repo", {
        "apps/books.yaml": BOOKS, "apps/reviews.yaml": REVIEWS, "environments/dev.yaml": ENV.format(url=history_prometheus.url)})
    output.write_rendering(work, render.render_repo(work))
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "books and reviews in dev", when=S, author="Ada Platform")
    books = Rollout.from_spec(YAML(typ="safe").load(BOOKS)["spec"]["rollout"])
    reviews = Rollout.from_spec(YAML(typ="safe").load(REVIEWS)["spec"]["rollout"])
    for minute, check in ((10, None), (15, PASS), (20, PASS), (25, FAIL), (30, PASS), (35, PASS)):
        bot_commit(work, "books", books, check, minute)
    for minute, check in ((40, None), (45, PASS)):
        bot_commit(work, "reviews", reviews, check, minute)
    return work


@pytest.fixture(scope="module")
def site(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = run_meshgen("report", "--out", str(out), "--backtest", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote 3 pages (2 rollouts, 2 backtests): {out / 'index.html'}\n"
    return out


@pytest.fixture(scope="module")
def history(repo):
    return json.loads(run_meshgen("rollout", "history", "--output", "json", cwd=repo, check=True).stdout)["rollouts"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium; CI installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Loaded:
    """A page opened from disk, with every console problem and every request it made."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 1000})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_function("window.meshgenCharts !== undefined")

    def js(self, expression: str):
        return self.page.evaluate(expression)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.prometheus
def test_every_page_loads_offline_without_console_errors_and_is_screenshotted(browser, site, history):
    pages = [site / "index.html"] + [site / "rollouts" / f"{r['id']}.html" for r in history]
    assert sorted(p.name for p in (site / "rollouts").iterdir()) == sorted(f"{r['id']}.html" for r in history)
    for path in pages:
        loaded = Loaded(browser, path)
        assert loaded.problems == [], path
        assert [url for url in loaded.requests if not url.startswith("file://")] == [], path
        shot = path.with_suffix(".png")
        loaded.page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        loaded.page.close()


@pytest.mark.prometheus
def test_the_weight_chart_is_the_history_point_by_point(browser, site, history):
    for rollout in history:
        loaded = Loaded(browser, site / "rollouts" / f"{rollout['id']}.html")
        points = loaded.js("window.meshgenCharts.weight.data.datasets[0].data.map(p => [p.x, p.y, p.commit, p.kind])")
        assert points == [[ms(e["time"]), e["weight"], e["commit"], e["kind"]] for e in rollout["events"]]
        drawn = loaded.js("window.meshgenCharts.weight.getDatasetMeta(0).data.map(e => [e.x, e.y])")
        assert len(drawn) == len(points) and all(x > 0 and y > 0 for x, y in drawn)
        ys = [y for _, y in drawn]
        assert ys[0] > ys[-1] or rollout["weight"] <= rollout["events"][0]["weight"]  # higher weight drawn higher
        loaded.page.close()


@pytest.mark.prometheus
def test_metric_charts_show_each_check_against_its_bound(browser, site, history):
    [books] = [r for r in history if r["app"] == "books"]
    loaded = Loaded(browser, site / "rollouts" / f"{books['id']}.html")
    checked = [e for e in books["events"] if e["check"]]
    rate = loaded.js("window.meshgenCharts.metrics['request-success-rate'].data.datasets.map("
                     "d => [d.label, d.data.map(p => [p.x, p.y, p.verdict || null])])")
    assert rate[0] == ["request-success-rate", [[ms(e["time"]), e["check"]["metrics"]["request-success-rate"],
                                                 e["check"]["verdict"]] for e in checked]]
    assert rate[1][0] == "min 0.99" and {y for _, y, _ in rate[1][1]} == {0.99}
    p99 = loaded.js("window.meshgenCharts.metrics['request-duration-p99'].data.datasets.map(d => d.label)")
    assert p99 == ["request-duration-p99", "max 500"]
    assert "dry run" in loaded.js("document.getElementById('metric-charts').textContent")
    colours = loaded.js("window.meshgenCharts.weight.data.datasets[0].pointBackgroundColor")
    verdicts = [(e["check"] or {}).get("verdict") for e in books["events"]]
    assert colours[verdicts.index("fail")] == "#c62828" and colours[verdicts.index("pass")] == "#2e7d32"
    loaded.page.close()


@pytest.mark.prometheus
def test_the_backtest_is_drawn_beside_the_real_run(browser, site, history):
    [books] = [r for r in history if r["app"] == "books"]
    loaded = Loaded(browser, site / "rollouts" / f"{books['id']}.html")
    data = loaded.js("window.meshgenData.backtest")
    drawn = loaded.js("window.meshgenCharts.weight.data.datasets[1].data.map(p => [p.x, p.y, p.kind])")
    assert drawn == [[ms(t["time"]), t["weight"], t["action"]] for t in data["ticks"]]
    # the same policy on the same (healthy) metrics: no failed check, 100 % at S+25m, success at S+30m
    assert [(t["time"][11:16], t["action"], t["weight"]) for t in data["ticks"]] == [
        ("00:10", "start", 10), ("00:15", "step", 25), ("00:20", "step", 50), ("00:25", "step", 100),
        ("00:30", "succeed", 100)]
    loaded.page.close()


@pytest.mark.prometheus
def test_a_click_on_a_point_opens_its_commit(browser, site, history):
    [books] = [r for r in history if r["app"] == "books"]
    loaded = Loaded(browser, site / "rollouts" / f"{books['id']}.html")
    box = loaded.page.locator("#chart-weight").bounding_box()
    x, y = loaded.js("(() => { const e = window.meshgenCharts.weight.getDatasetMeta(0).data[2]; return [e.x, e.y]; })()")
    loaded.page.mouse.click(box["x"] + x, box["y"] + y)
    loaded.page.wait_for_function("location.hash.length > 1")
    commit = books["events"][2]["commit"]
    assert loaded.js("location.hash") == f"#commit-{commit}"
    assert loaded.page.locator(f"#commit-{commit}").count() == 1
    loaded.page.close()


@pytest.mark.prometheus
def test_the_index_draws_each_route_split_and_the_rollouts_in_progress(browser, site):
    loaded = Loaded(browser, site / "index.html")
    routes = loaded.js("""[...document.querySelectorAll('#env-dev .app')].map(app => [app.id,
        [...app.querySelectorAll('.route')].map(r => [r.querySelector('.route-name').textContent.split(' ')[0],
        [...r.querySelectorAll('.share')].map(s => [s.dataset.version, +s.dataset.weight, s.getBoundingClientRect().width])])])""")
    assert [(app, [(name, [(v, w) for v, w, _ in shares]) for name, shares in rs]) for app, rs in routes] == [
        ("app-dev-books", [("jason", [("v2", 100)]), ("default", [("v2", 100)])]),
        ("app-dev-reviews", [("jason", [("v3", 100)]), ("default", [("v1", 75), ("v3", 25)])])]
    [[_, [_, [(_, _, wide), (_, _, narrow)]]]] = [[a, r[1]] for a, r in routes if a == "app-dev-reviews"]
    assert wide == pytest.approx(3 * narrow, rel=0.05)  # 75 % drawn three times as wide as 25 %
    running = loaded.js("[...document.querySelectorAll('#env-dev table.rollouts tr')].slice(1).map(r => r.innerText)")
    assert len(running) == 1 and running[0].startswith("reviews\tv1 → v3\tProgressing\t25 %")
    assert "mirror → v2 (5.0 %)" in loaded.js("document.getElementById('app-dev-books').innerText")
    loaded.page.close()


def test_report_errors_and_an_empty_history(tmp_path):
    plain = build_file_tree(tmp_path / "plain", {"environments/dev.yaml": ENV.format(url="http://127.0.0.1:9"),
                                                 "apps/books.yaml": BOOKS})
    proc = run_meshgen("report", "--out", str(tmp_path / "a"), cwd=plain)
    assert proc.returncode == 2 and "not a git repository" in proc.stderr
    git(plain, "init", "-q", "-b", "main")
    git(plain, "add", "-A")
    git(plain, "commit", "-qm", "books")
    proc = run_meshgen("report", "--out", str(tmp_path / "site"), cwd=plain, check=True)
    assert proc.stdout == f"wrote 1 page (0 rollouts): {tmp_path / 'site' / 'index.html'}\n"
    assert "No rollout yet" in (tmp_path / "site" / "index.html").read_text()
    proc = run_meshgen("report", "--out", str(tmp_path / "b"), "--commit-url", "https://example.com/c/", cwd=plain)
    assert proc.returncode == 2 and "has no {sha}" in proc.stderr


@pytest.mark.prometheus
def test_backtest_with_prometheus_down_exits_3(repo, tmp_path):
    proc = run_meshgen("report", "--out", str(tmp_path / "site"), "--backtest", "--prometheus-url",
                       "http://127.0.0.1:9", cwd=repo)
    assert proc.returncode == 3 and "Prometheus at http://127.0.0.1:9 failed" in proc.stderr


@pytest.mark.prometheus
def test_commit_links_follow_the_template(repo, tmp_path):
    run_meshgen("report", "--out", str(tmp_path / "site"), "--commit-url",
                "https://github.com/acme/mesh/commit/{sha}", cwd=repo, check=True)
    page = next((tmp_path / "site" / "rollouts").glob("dev-books-*.html")).read_text()
    head = git(repo, "log", "-1", "--format=%H", "--", "status/dev/books.yaml").strip()
    assert f'href="https://github.com/acme/mesh/commit/{head}"' in page
    assert f'"link":"https://github.com/acme/mesh/commit/{head}"' in page


@pytest.mark.prometheus
def test_the_site_is_the_same_bytes_on_every_run(repo, tmp_path):
    for name, seed in (("one", "1"), ("two", "2")):  # two interpreters that order sets differently
        run_meshgen("report", "--out", str(tmp_path / name), cwd=repo, env={"PYTHONHASHSEED": seed}, check=True)
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    two = {p.relative_to(tmp_path / "two"): p.read_bytes() for p in (tmp_path / "two").rglob("*") if p.is_file()}
    assert one == two and len(one) == 9  # 8 and the list of them, .meshgen-report


# --- the CI example that publishes the report ----------------------------------------------

WORKFLOW = ROOT / "examples" / "ci" / "report.yaml"


def test_the_pages_workflow_is_valid_and_publishes_on_every_push_to_main():
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOW)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wf = YAML(typ="safe").load(WORKFLOW.read_text())
    assert wf["on"]["push"] == {"branches": ["main"]}
    assert wf["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    steps = wf["jobs"]["publish"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0  # the history is the whole git log
    assert [s["uses"].split("@")[0] for s in steps if "uses" in s][-2:] == \
        ["actions/upload-pages-artifact", "actions/deploy-pages"]


@pytest.mark.prometheus
def test_the_workflow_report_command_runs(repo, tmp_path):
    [command] = [s["run"] for s in YAML(typ="safe").load(WORKFLOW.read_text())["jobs"]["publish"]["steps"]
                 if s.get("run", "").startswith("meshgen report")]
    command = command.replace("${{ github.server_url }}", "https://github.com").replace(
        "${{ github.repository }}", "acme/mesh")
    assert "${{" not in command
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "meshgen").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m generator "$@"\n')
    (bin_dir / "meshgen").chmod(0o755)
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(repo), str(checkout))
    proc = subprocess.run(["bash", "-e", "-c", command], cwd=checkout, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert (checkout / "site" / "index.html").is_file() and len(list((checkout / "site" / "rollouts").iterdir())) == 2


# --- where the report writes: its own folder, its own files, never through a link ----------------


@pytest.fixture
def plain(tmp_path):
    """A committed repository with one app and no rollout history."""
    repo = build_file_tree(tmp_path / "plain", {"environments/dev.yaml": ENV.format(url="http://127.0.0.1:9"),
                                                "apps/books.yaml": BOOKS})
    output.write_rendering(repo, render.render_repo(repo))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "books")
    return repo


def tree_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_never_writes_through_a_link(plain, tmp_path):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    (site / "assets").symlink_to(elsewhere)
    proc = run_meshgen("report", "--out", str(site), cwd=plain)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"error: --out {site}: {site / 'assets'} (to {elsewhere}) is a symbolic link; the report "
                           f"never writes through a link (hint: remove the link, or choose another --out, or move "
                           f"what is there away)\n")
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in site.iterdir()) == ["assets"]


def test_report_never_overwrites_a_file_it_did_not_write(plain, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>our team's page</h1>\n")
    (site / "notes.txt").write_text("keep\n")
    proc = run_meshgen("report", "--out", str(site), cwd=plain)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: --out {site}: {site / 'index.html'} exists and was not written by "
                                  f"meshgen report (not listed in {site / '.meshgen-report'}); nothing was "
                                  f"overwritten (hint: ")
    assert tree_of(site) == {"index.html": b"<h1>our team's page</h1>\n", "notes.txt": b"keep\n"}
    (site / "index.html").unlink()
    run_meshgen("report", "--out", str(site), cwd=plain, check=True)
    listed = (site / ".meshgen-report").read_text().splitlines()
    assert listed[0].startswith("# Written by meshgen report") and "index.html" in listed
    assert "notes.txt" not in listed and (site / "notes.txt").read_text() == "keep\n"
    before = tree_of(site)
    (site / "index.html").write_text("changed by hand\n")  # its own file: replaced by the next report
    run_meshgen("report", "--out", str(site), cwd=plain, check=True)
    assert tree_of(site) == before


def test_a_marker_the_report_did_not_write_is_refused(plain, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / ".meshgen-report").write_text("index.html\n")
    (site / "index.html").write_text("mine\n")
    proc = run_meshgen("report", "--out", str(site), cwd=plain)
    assert proc.returncode == 2 and "was not written by meshgen report" in proc.stderr
    assert (site / "index.html").read_text() == "mine\n"


@pytest.mark.parametrize("out,words", [
    (".", "is the repository's root"),
    ("rendered", "is inside the repository's rendered/"),
    ("rendered/dev/site", "is inside the repository's rendered/"),
    (".git", "is inside the repository's .git/"),
    (".git/site", "is inside the repository's .git/"),
])
def test_report_refuses_the_repository_root_rendered_and_git(plain, out, words):
    before = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=plain, capture_output=True,
                            text=True, check=True).stdout
    proc = run_meshgen("report", "--out", out, cwd=plain)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: --out {out}: {words}") and "hint: choose a folder of its own" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=plain, capture_output=True,
                          text=True, check=True).stdout == before
    assert not (plain / "index.html").exists() and not (plain / ".git" / "site").exists()


def test_a_report_folder_inside_the_repository_is_fine(plain):
    run_meshgen("report", "--out", "build/report", cwd=plain, check=True)
    assert (plain / "build" / "report" / "index.html").is_file()
SHOP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: shop, namespace: mesh}
spec:
  service: {host: shop, port: 80}
  versions: {v1: {labels: {version: v1}}, v2: {labels: {version: v2}}}
  routes:
    - {name: old-shop, when: 'uri prefix "/old"', redirect: {scheme: https, authority: shop.example.com, uri: /}}
    - {name: down, when: 'uri prefix "/down"', directResponse: {status: 503, body: {string: maintenance}}}
    - {name: beta, when: 'uri prefix "/api" and not method exact "POST"', to: v2}
    - {name: default, to: v1}
"""
PIPELINE = "promotion: {order: [dev, staging, prod], soak: 30m}\n"


def test_the_index_shows_spec_routes_with_redirects_labelled_and_environments_in_pipeline_order(browser, tmp_path):
    envs = {f"environments/{e}.yaml": ENV.replace("name: dev", f"name: {e}").format(url="http://127.0.0.1:9")
            for e in ("dev", "staging", "prod", "qa", "demo")}
    work = build_file_tree(tmp_path / "repo", {"apps/shop.yaml": SHOP, "meshgen.yaml": PIPELINE, **envs})
    output.write_rendering(work, render.render_repo(work))
    istio = [r["name"] for r in output_vs(work)["spec"]["http"]]
    assert any("guard" in name for name in istio), istio  # the spec's four routes compile to more
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "shop")
    run_meshgen("report", "--out", str(tmp_path / "site"), cwd=work, check=True)
    loaded = Loaded(browser, tmp_path / "site" / "index.html")
    assert loaded.js("[...document.querySelectorAll('section.env')].map(s => s.id)") == [
        "env-dev", "env-staging", "env-prod", "env-demo", "env-qa"]
    routes = loaded.js("""[...document.querySelectorAll('#app-prod-shop .route')].map(r => [
        r.querySelector('.route-name').textContent.split(' ')[0],
        r.querySelector('.when') ? r.querySelector('.when').textContent : null,
        r.querySelector('.action') ? [r.querySelector('.action').dataset.action, r.querySelector('.action').textContent] : null,
        [...r.querySelectorAll('.share')].map(s => [s.dataset.version, +s.dataset.weight])])""")
    assert routes == [
        ["old-shop", 'when uri prefix "/old"', ["redirect", "redirect 301 to https://shop.example.com/"], []],
        ["down", 'when uri prefix "/down"', ["directResponse", 'direct response 503 "maintenance"'], []],
        ["beta", 'when uri prefix "/api" and not method exact "POST"', None, [["v2", 100]]],
        ["default", None, None, [["v1", 100]]]]
    assert not loaded.problems
    loaded.page.close()


def output_vs(work: Path) -> dict:
    return YAML(typ="safe").load((work / "rendered/prod/mesh/shop/virtualservice.yaml").read_text())
