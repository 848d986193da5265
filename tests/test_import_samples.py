"""Istio's own samples through ``meshgen import`` and ``meshgen render``: every object that is
imported comes back the same (tests/import_roundtrip.py ``normalise``), and every imported
VirtualService answers the generated requests (its hosts, match values and near misses) as the
original does, in one real Envoy holding both side by side. docs/istio-samples.md is the table
of these results (tools/import_samples_table.py writes it) and must be current."""

from __future__ import annotations

import pytest

from tests import envoy
from tests import import_roundtrip as rt

BINARY, WHY_NOT = envoy.envoy_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason=WHY_NOT)
DOC = rt.SAMPLES.parent.parent / "docs" / "istio-samples.md"


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[rt.SampleRow]:
    return rt.sample_rows(BINARY, tmp_path_factory.mktemp("samples"))


def test_every_imported_sample_object_round_trips(rows):
    wrong = [f"{r.file}:{r.line} {r.kind} {r.name}: {r.note}" for r in rows if r.status == rt.DIFFERS]
    assert not wrong, "\n".join(wrong)


def test_the_everyday_samples_import(rows):
    """bookinfo's routing, its gateway, the DestinationRules and the egress ServiceEntries."""
    imported = {(r.file, r.kind) for r in rows if r.status != rt.NOT_IMPORTED}
    for file, kind in [("bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml", "VirtualService"),
                       ("bookinfo/networking/virtual-service-reviews-80-20.yaml", "VirtualService"),
                       ("bookinfo/networking/destination-rule-all-mtls.yaml", "DestinationRule"),
                       ("bookinfo/networking/bookinfo-gateway.yaml", "Gateway"),
                       ("bookinfo/networking/bookinfo-gateway.yaml", "VirtualService"),
                       ("external/pypi.yaml", "ServiceEntry")]:
        assert (file, kind) in imported, f"{kind} of {file} is not imported"


def test_the_comparison_sees_a_changed_destination():
    """The Envoy comparison is not blind: a rendered object sending jason to v3 instead of v2."""
    import yaml

    original = next(yaml.safe_load_all(
        (rt.SAMPLES / "samples/bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml").read_text()))
    changed = yaml.safe_load(yaml.safe_dump(original))
    changed["spec"]["http"][0]["route"][0]["destination"]["subset"] = "v3"
    diffs = rt.envoy_differences(BINARY, [("k", original, changed, [])])
    assert diffs["k"] and "end-user" in diffs["k"][0]


def test_the_samples_table_is_current(rows):
    assert DOC.read_text() == rt.table(rows), "docs/istio-samples.md is stale: run tools/import_samples_table.py"
