from __future__ import annotations

import json

import pytest

from bootstrapper.engine.plan import plan
from bootstrapper.manifest import fields as F
from bootstrapper.manifest.conditions import Decision, NoProbe, evaluate
from bootstrapper.manifest.facts import Facts
from bootstrapper.manifest.load import load_bytes
from bootstrapper.manifest.model import AllOf, AnyOf, Arch, Model, OSVersion, PathExists, Predicate, Script
from bootstrapper.manifest.version import compare
from tests.manifest.helpers import HASH, load

MAC = Facts(arch="arm64", os_version="14.6.1", model="MacBookPro18,1")


class Probe:
    def __init__(self, paths: set[str], script_ok: bool) -> None:
        self.paths = paths
        self.script_ok = script_ok

    def path_exists(self, path: str) -> bool | None:
        return path in self.paths

    def script_succeeds(self, source: str) -> bool | None:
        return self.script_ok


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("10.3", "10.10", -1),
        ("1.3.1-506", "1.3.1", 1),
        ("17.50+19", "17.50", 1),
        ("1.0", "1.0b2", 1),
        ("1.0", "1.0.0", 0),
        ("1.0.1", "1.0", 1),
        ("3.0.3265", "3.0.3265", 0),
        ("14.6.1", "14.10", -1),
    ],
)
def test_loose_version_comparison(a: str, b: str, expected: int) -> None:
    assert compare(a, b) == expected
    assert compare(b, a) == -expected


def test_predicates_decide_with_a_reason() -> None:
    probe = Probe({"/Applications/Foo.app"}, script_ok=False)
    assert evaluate(AllOf((Arch("arm64"),)), MAC, probe) == Decision(True, "arch is arm64")
    assert evaluate(AllOf((Arch("x86_64"),)), MAC, probe) == Decision(False, "arch is arm64, not x86_64")
    assert evaluate(AllOf((OSVersion(">=", "14.2"),)), MAC, probe) == Decision(
        True, "macOS 14.6.1 is >= 14.2"
    )
    assert evaluate(AllOf((OSVersion("<", "14.2"),)), MAC, probe).holds is False
    assert evaluate(AllOf((Model("MacBook*"),)), MAC, probe).holds is True
    assert evaluate(AllOf((PathExists("/Applications/Foo.app"),)), MAC, probe).holds is True
    assert evaluate(AllOf((Script("exit 1"),)), MAC, probe) == Decision(False, "the condition script failed")


def test_all_of_needs_every_predicate_and_any_of_one_branch() -> None:
    probe = Probe(set(), script_ok=True)
    both = AllOf((Arch("arm64"), Model("iMac*")))
    assert evaluate(both, MAC, probe).holds is False
    either = AnyOf((AllOf((Model("iMac*"),)), AllOf((Arch("arm64"),))))
    assert evaluate(either, MAC, probe).holds is True


def test_paths_and_scripts_are_unknown_away_from_the_mac() -> None:
    d = evaluate(AllOf((PathExists("/x"),)), MAC, NoProbe())
    assert d.holds is None
    # A known False still decides, whatever is unknown.
    assert evaluate(AllOf((PathExists("/x"), Arch("x86_64"))), MAC, NoProbe()).holds is False


def test_plan_orders_steps_and_explains_skips() -> None:
    loaded = load(
        f"""\
        format: 1
        setupassistant:
        - name: App
          type: package
          url: https://e.com/a.pkg
          hash: {HASH}
          packageid: com.e.app
          version: "2.0"
        - name: Intel only
          type: rootscript
          url: https://e.com/i.sh
          hash: {HASH}
          only_if: {{arch: x86_64}}
        userland:
        - name: Maybe
          type: rootscript
          url: https://e.com/m.sh
          hash: {HASH}
          skip_if: {{path_exists: /Applications/Foo.app}}
        - name: Done
          type: rootscript
          url: https://e.com/d.sh
          hash: {HASH}
        """
    )
    steps = plan(loaded.manifest, MAC, receipts={"com.e.app": "2.0.1"}, done=frozenset({"userland[1]"}))
    assert [(s.id, s.skip, s.reason) for s in steps] == [
        ("setupassistant[0]", True, "installed: com.e.app 2.0.1 ≥ 2.0"),
        ("setupassistant[1]", True, "only_if: arch is arm64, not x86_64"),
        ("userland[0]", None, "skip_if: whether /Applications/Foo.app exists is decided on the Mac"),
        ("userland[1]", True, "done in an earlier run"),
    ]
    older = plan(loaded.manifest, MAC, receipts={"com.e.app": "1.9"})
    assert older[0].skip is False


#: One readable value per condition test, and what it is read as.
READ = [
    ("arch", "apple_silicon", Arch("arm64")),
    ("os_version", ">= 14.0", OSVersion(">=", "14.0")),
    ("model", " MacBook* ", Model("MacBook*")),
    ("path_exists", "/Applications/X.app", PathExists("/Applications/X.app")),
    ("script", "exit 0", Script("exit 0")),
]


def test_the_cases_cover_every_condition_test_in_the_key_table() -> None:
    assert [test for test, _, _ in READ] == list(F.CONDITION_KEYS)


@pytest.mark.parametrize(("test", "value", "expected"), READ, ids=[t for t, _, _ in READ])
def test_every_condition_test_is_read(test: str, value: str, expected: Predicate) -> None:
    item = {"name": "x", "type": "wait", "path": "/a", "only_if": {test: value}}
    loaded = load_bytes(json.dumps({"format": 1, "userland": [item]}).encode(), "m.yaml")
    assert loaded.manifest.items[0].only_if == AllOf((expected,))
