"""One test per manifest rule, asserting the exact message a user sees."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from bootstrapper.errors import ManifestError
from bootstrapper.manifest.kinds import ItemType
from bootstrapper.manifest.load import load_bytes
from bootstrapper.manifest.model import FailPolicy, Format
from tests.manifest.helpers import HASH, errors, load, warnings


def native(items: str, top: str = "") -> str:
    return f"format: 1\n{top}userland:\n{items}"


def test_a_valid_native_manifest_loads_with_defaults() -> None:
    loaded = load(
        native(f"""\
- name: Dock setup
  type: rootscript
  url: https://example.com/dock.sh
  hash: {HASH}
""")
    )
    item = loaded.manifest.items[0]
    assert loaded.manifest.format is Format.NATIVE
    assert item.type is ItemType.ROOTSCRIPT
    assert item.id == "userland[0]"
    assert item.file == PurePosixPath("/Library/bootstrapper/userland/dock.sh")
    assert item.retries == 3
    assert item.fail_policy is FailPolicy.FAILABLE_EXECUTION
    assert loaded.warnings == ()


def test_short_hash_is_reported_with_breadcrumb_and_position() -> None:
    problems = errors(
        native(f"""\
- name: Dock setup
  type: rootscript
  url: https://example.com/dock.sh
  hash: {HASH[:63]}
""")
    )
    assert problems == ['m.yaml:6:9: userland[0] "Dock setup" → hash: expected 64 hex digits, got 63']


def test_hash_accepts_upper_case_and_prefix_and_stores_lower_case() -> None:
    loaded = load(
        native(f"""\
- name: a
  type: rootscript
  url: https://example.com/a.sh
  hash: sha256:{HASH.upper()}
""")
    )
    assert loaded.manifest.items[0].hash == HASH


def test_hash_that_is_not_hex_is_refused() -> None:
    problems = errors(
        native("""\
- name: a
  type: rootscript
  url: https://example.com/a.sh
  hash: md5:0123
""")
    )
    assert problems == [
        "m.yaml:6:9: userland[0] \"a\" → hash: expected 64 hex digits (sha256), got 'md5:0123'"
    ]


def test_missing_hash_is_an_error_in_native_format() -> None:
    problems = errors(native("- name: a\n  type: rootscript\n  url: https://example.com/a.sh\n"))
    assert problems == [
        'm.yaml:3:3: userland[0] "a" → hash: missing; add the file\'s sha256 (`shasum -a 256 FILE`)'
    ]


def test_every_error_is_reported_at_once() -> None:
    problems = errors(
        native("""\
- name: one
  type: rootscript
  url: https://example.com/a.sh
  hash: abc
- name: two
  type: bogus
- type: package
""")
    )
    assert problems == [
        'm.yaml:6:9: userland[0] "one" → hash: expected 64 hex digits, got 3',
        "m.yaml:8:9: userland[1] \"two\" → type: 'bogus' is not an item type; expected one of package, "
        "rootscript, userscript, rootfile, userfile, wait",
        "m.yaml:9:3: userland[2] → name: missing; every item needs a name",
        "m.yaml:9:3: userland[2] → url: missing; where is it downloaded from?",
        "m.yaml:9:3: userland[2] → hash: missing; add the file's sha256 (`shasum -a 256 FILE`)",
        "m.yaml:9:3: userland[2] → packageid: needed to tell whether the package is installed; add it, "
        "or set `required: true` to install it every time",
    ]


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    problems = errors(
        native(f"""\
- name: a
  type: rootscript
  url: https://example.com/a.sh
  hash: {HASH}
  retrys: 2
""")
    )
    assert problems == ["m.yaml:7:3: userland[0] \"a\" → retrys: unknown key (did you mean 'retries'?)"]


def test_unknown_type_suggests_the_closest() -> None:
    problems = errors(native(f"- name: a\n  type: rootscirpt\n  url: {'https://e.com/a'}\n  hash: {HASH}\n"))
    assert problems == [
        "m.yaml:4:9: userland[0] \"a\" → type: 'rootscirpt' is not an item type; expected one of package, "
        "rootscript, userscript, rootfile, userfile, wait (did you mean 'rootscript'?)"
    ]


def test_http_is_refused_without_allow_http() -> None:
    problems = errors(native(f"- name: a\n  type: rootscript\n  url: http://e.com/a.sh\n  hash: {HASH}\n"))
    assert problems == [
        'm.yaml:5:8: userland[0] "a" → url: http:// is refused; use https://, or allow it for a lab with '
        "`settings: allow_http: true` or --allow-http"
    ]


def test_http_is_allowed_by_setting_with_a_warning() -> None:
    found = warnings(
        native(
            f"- name: a\n  type: rootscript\n  url: http://e.com/a.sh\n  hash: {HASH}\n",
            "settings:\n  allow_http: true\n",
        )
    )
    assert found == ["m.yaml:3:3: http:// downloads are allowed: they are not protected by TLS"]


def test_http_is_allowed_by_flag_with_a_warning() -> None:
    found = warnings(
        native(f"- name: a\n  type: rootscript\n  url: http://e.com/a.sh\n  hash: {HASH}\n"), allow_http=True
    )
    assert found == ["m.yaml: http:// downloads are allowed: they are not protected by TLS"]


def test_credentials_in_url_are_refused() -> None:
    problems = errors(
        native(f"- name: a\n  type: rootscript\n  url: https://u:pw@e.com/a.sh\n  hash: {HASH}\n")
    )
    assert len(problems) == 1
    assert "credentials inside URLs are refused" in problems[0]
    assert "pw" not in problems[0]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://[::1/a.sh",
            "'https://[::1/a.sh' is not a valid URL (check the [ ] around an IPv6 address)",
        ),
        (
            "https://[zz]/a.sh",
            "'https://[zz]/a.sh' is not a valid URL (check the [ ] around an IPv6 address)",
        ),
        ("https://e.com:99999/a.sh", "has the port '99999'; give a number from 1 to 65535, or none"),
        ("https://e.com:abc/a.sh", "has the port 'abc'; give a number from 1 to 65535, or none"),
        ("https://e.com:0/a.sh", "has the port '0'; give a number from 1 to 65535, or none"),
        ("https://e.com:1:2/a.sh", "has the port '1:2'; give a number from 1 to 65535, or none"),
        ("https://e x.com/a.sh", "the host 'e x.com' may hold only letters, digits, '.', '-' and '_'"),
        ("https://e%41.com/a.sh", "the host 'e%41.com' may hold only letters, digits, '.', '-' and '_'"),
    ],
)
def test_malformed_urls_are_bad_input_at_their_line(url: str, message: str) -> None:
    problems = errors(native(f'- name: a\n  type: rootscript\n  url: "{url}"\n  hash: {HASH}\n'))
    assert len(problems) == 1
    assert problems[0].startswith('m.yaml:5:8: userland[0] "a" → url: ')
    assert message in problems[0]


@pytest.mark.parametrize(
    "url", ["https://[::1]:8443/a.sh", "https://e.com:443/a.sh", "https://bücher.de/a.sh", "https://e.com:/a"]
)
def test_well_formed_urls_with_ports_and_hosts_load(url: str) -> None:
    assert load(native(f'- name: a\n  type: rootscript\n  url: "{url}"\n  hash: {HASH}\n')).manifest.items


def test_relative_url_resolves_against_the_manifest_location() -> None:
    loaded = load(native(f"- name: a\n  type: rootscript\n  url: ../items/a.sh\n  hash: {HASH}\n"))
    assert loaded.manifest.items[0].url == "https://example.com/items/a.sh"


def test_file_url_needs_a_local_manifest() -> None:
    text = native(f"- name: a\n  type: rootscript\n  url: file:///srv/a.sh\n  hash: {HASH}\n")
    assert "file:// URLs are allowed only in a manifest read from this machine" in errors(text)[0]
    assert load(text, local=True).manifest.items[0].url == "file:///srv/a.sh"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/Library/bootstrapper/../etc/x.sh", "contains '..'; give the path without it"),
        ("/Library/bootstrapper/a\x07.sh", "contains NUL or control characters"),
        ("/Library/bootstrapper/" + "n" * 256, "a name in it is longer than 255 bytes"),
        ("Library/bootstrapper/a.sh", "must be an absolute path"),
        ("/tmp/a.sh", "packages and scripts are kept under /Library/bootstrapper"),
    ],
)
def test_bad_file_paths_are_refused(path: str, message: str) -> None:
    text = native(
        f"- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n  file: {json.dumps(path)}\n"
    )
    problems = errors(text)
    assert len(problems) == 1
    assert message in problems[0]


def test_user_items_are_refused_in_setupassistant() -> None:
    text = f"format: 1\nsetupassistant:\n- name: a\n  type: userscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n"
    assert errors(text) == [
        'm.yaml:4:9: setupassistant[0] "a" → type: userscript items run as the logged-in user and belong in '
        "userland, not setupassistant"
    ]


def test_preflight_holds_root_scripts_only() -> None:
    text = (
        f"format: 1\npreflight:\n- name: p\n  type: package\n  url: https://e.com/p.pkg\n  hash: {HASH}\n"
        "  required: true\n"
    )
    assert errors(text) == [
        'm.yaml:4:9: preflight[0] "p" → type: preflight holds root scripts only, not package'
    ]


def test_package_needs_packageid_and_version_unless_required() -> None:
    text = native(
        f"- name: p\n  type: package\n  url: https://e.com/p.pkg\n  hash: {HASH}\n  version: '1.0'\n"
    )
    assert errors(text) == [
        'm.yaml:3:3: userland[0] "p" → packageid: needed to tell whether the package is installed; add it, '
        "or set `required: true` to install it every time"
    ]
    assert load(text.replace("version: '1.0'", "required: true")).manifest.items[0].required


def test_version_keeps_its_text() -> None:
    text = native(
        f"- name: p\n  type: package\n  url: https://e.com/p.pkg\n  hash: {HASH}\n  packageid: x\n  version: 1.10\n"
    )
    assert load(text).manifest.items[0].version == "1.10"


def test_names_must_be_unique() -> None:
    item = f"- name: same\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n"
    problems = errors(native(item + item))
    assert problems == [
        'm.yaml:7:9: userland[1] "same" → name: also used by userland[0]; names must be unique so logs and '
        "progress can tell them apart"
    ]


def test_retries_zero_means_no_retry_and_negative_is_refused() -> None:
    base = f"- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n"
    assert load(native(base + "  retries: 0\n")).manifest.items[0].retries == 0
    assert errors(native(base + "  retries: -1\n")) == [
        'm.yaml:7:12: userland[0] "a" → retries: expected a number ≥ 0, got -1'
    ]


def test_wrong_types_name_what_was_expected() -> None:
    base = f"- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n"
    assert errors(native(base + "  donotwait: yes please\n")) == [
        "m.yaml:7:14: userland[0] \"a\" → donotwait: expected true or false, got 'yes please' (a text)"
    ]
    assert errors(native(base + "  timeout: soon\n")) == [
        "m.yaml:7:12: userland[0] \"a\" → timeout: expected a number, got 'soon' (a text)"
    ]


def test_bad_enum_lists_the_choices() -> None:
    base = f"- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n"
    assert errors(native(base + "  fail_policy: failable_exec\n")) == [
        "m.yaml:7:16: userland[0] \"a\" → fail_policy: 'failable_exec' is not one of failable, failable_execution, "
        "failure_is_not_an_option (did you mean 'failable_execution'?)"
    ]


def test_format_is_required_in_yaml() -> None:
    assert errors("userland: []\n") == [
        "m.yaml:1:1: format: missing; add `format: 1` at the top (or give an InstallApplications bootstrap.json)"
    ]


def test_future_format_is_refused() -> None:
    assert errors("format: 2\n") == [
        "m.yaml:1:9: format: version 2 is not supported: this bootstrapper reads format 1"
    ]


def test_wait_item_needs_an_absolute_path_and_gets_a_default_timeout() -> None:
    loaded = load(native("- name: w\n  type: wait\n  path: /Applications/Foo.app\n"))
    item = loaded.manifest.items[0]
    assert item.path == "/Applications/Foo.app"
    assert item.timeout == 900.0
    assert errors(native("- name: w\n  type: wait\n")) == [
        'm.yaml:3:3: userland[0] "w" → path: missing; a wait item waits for this path to exist'
    ]


def test_conditions_parse_all_forms() -> None:
    base = f"- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n"
    text = native(
        base
        + "  skip_if: intel\n"
        + "  only_if:\n  - {os_version: '>= 14.2', model: 'MacBook*'}\n  - {path_exists: /x, script: 'test 1'}\n"
    )
    item = load(text).manifest.items[0]
    assert item.skip_if is not None
    assert item.only_if is not None


def test_bad_condition_is_refused() -> None:
    base = f"- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n"
    assert errors(native(base + "  only_if: {os_version: '14'}\n")) == [
        "m.yaml:7:25: userland[0] \"a\" → only_if → os_version: expected a comparison such as '>= 14.0', got '14'"
    ]
    assert errors(native(base + "  only_if: {arhc: arm64}\n")) == [
        'm.yaml:7:13: userland[0] "a" → only_if → arhc: not a condition test; expected one of arch, os_version, '
        "model, path_exists, script (did you mean 'arch'?)"
    ]


def test_settings_give_item_defaults() -> None:
    text = native(
        f"- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n",
        "settings:\n  retries: 7\n  fail_policy: failable\n",
    )
    item = load(text).manifest.items[0]
    assert item.retries == 7
    assert item.fail_policy is FailPolicy.FAILABLE


# --- the safe parser -------------------------------------------------------------------------


def test_python_tags_are_refused() -> None:
    problems = errors("format: 1\nuserland: !!python/object/apply:os.system ['true']\n")
    assert problems == [
        "m.yaml:2:11: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system': "
        "only plain values are allowed"
    ]


def test_duplicate_keys_are_refused() -> None:
    problems = errors("format: 1\nuserland: []\nuserland: []\n")
    assert problems == ["m.yaml:3:1: duplicate key 'userland' (first at line 2): each key may appear once"]


def test_duplicate_keys_are_refused_in_json() -> None:
    with pytest.raises(ManifestError) as info:
        load_bytes(b'{"userland": [], "userland": []}', "b.json")
    assert "duplicate key 'userland'" in info.value.problems[0]


def test_billion_laughs_fails_fast() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    problems = errors("\n".join(lines) + "\n")
    assert "expands to more than" in problems[0]


def test_oversized_input_is_refused() -> None:
    with pytest.raises(ManifestError, match="the limit is 4194304"):
        load_bytes(b"#" * (4 * 1024 * 1024 + 1), "big.yaml")


def test_invalid_yaml_has_a_position() -> None:
    assert errors("format: 1\nuserland: [\n")[0].startswith("m.yaml:3:1: invalid YAML")


def test_invalid_json_has_a_position() -> None:
    with pytest.raises(ManifestError) as info:
        load_bytes(b'{"userland": [}', "b.json")
    assert info.value.problems == ["b.json:1:15: invalid JSON: Expecting value"]


def test_a_wrong_type_leaks_no_internals_and_hides_no_other_error() -> None:
    problems = errors(
        native("- name: a\n  type: [x]\n  url: https://e.com:99999/a\n  retries: -3\n  hash: 12\n")
    )
    assert problems == [
        'm.yaml:4:9: userland[0] "a" → type: expected one of package, rootscript, userscript, rootfile, '
        "userfile, wait, got a list",
        "m.yaml:5:8: userland[0] \"a\" → url: 'https://e.com:99999/a' has the port '99999'; "
        "give a number from 1 to 65535, or none",
        'm.yaml:6:12: userland[0] "a" → retries: expected a number ≥ 0, got -3',
        'm.yaml:7:9: userland[0] "a" → hash: 12 is a number, not 64 hex digits (sha256)',
    ]


def test_a_list_where_a_choice_goes_is_named_as_a_list() -> None:
    base = f"- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n  hash: {HASH}\n"
    assert errors(native(base + "  fail_policy: [1]\n")) == [
        'm.yaml:7:16: userland[0] "a" → fail_policy: expected one of failable, failable_execution, '
        "failure_is_not_an_option, got a list"
    ]


def test_a_hash_yaml_reads_as_a_number() -> None:
    base = "- name: a\n  type: rootscript\n  url: https://e.com/a.sh\n"
    assert errors(native(base + "  hash: 12345\n")) == [
        'm.yaml:6:9: userland[0] "a" → hash: 12345 is a number, not 64 hex digits (sha256)'
    ]
    digits = "1234567890" * 6 + "1234"
    assert load(native(base + f"  hash: {digits}\n")).manifest.items[0].hash == digits


def test_merge_keys_share_an_items_keys() -> None:
    text = f"""\
        format: 1
        userland:
          - &script
            name: first
            type: rootscript
            url: https://e.com/a.sh
            hash: {HASH}
            retries: 1
          - <<: *script
            name: second
            retries: 4
          - <<: [{{donotwait: true}}, *script]
            name: third
        """
    items = load(text).manifest.items
    assert [(i.name, i.type.value, i.url, i.retries, i.donotwait) for i in items] == [
        ("first", "rootscript", "https://e.com/a.sh", 1, False),
        ("second", "rootscript", "https://e.com/a.sh", 4, False),
        ("third", "rootscript", "https://e.com/a.sh", 1, True),
    ]


def test_a_merge_of_something_else_than_a_mapping_is_refused() -> None:
    assert errors(native("- <<: [1]\n  name: a\n  type: wait\n  path: /tmp/x\n"))[0] == (
        "m.yaml:3:7: `<<:` merges a mapping or a list of mappings (e.g. `<<: *defaults`)"
    )


def test_long_values_are_cut_in_messages() -> None:
    big = "x" * 1_000_000
    doc = {"preflight": [], "userland": [{"name": big, "type": big, "file": "/a/" + big, big: 1}]}
    with pytest.raises(ManifestError) as info:
        load_bytes(json.dumps(doc).encode(), "b.json")
    problems = info.value.problems + [str(w) for w in info.value.warnings]
    assert len(problems) == 3
    assert all(len(p) < 400 for p in problems), [len(p) for p in problems]


def test_a_number_past_pythons_digit_limit_is_an_error_not_a_crash() -> None:
    problems = errors(f"format: 1\nsettings:\n  retries: {'1' * 5000}\n")
    assert problems[0] == "m.yaml:3:12: a number of 5000 digits; is it a mistake?"
    assert all(len(p) < 300 for p in problems)


@pytest.mark.parametrize(
    ("name", "shown"),
    [("ad\u200bmin", "\\u200b"), ("setup \u202egnp.sh", "\\u202e"), ("a\u2066b\u2069", "\\u2066, \\u2069")],
)
def test_names_with_invisible_or_reordering_characters_are_refused(name: str, shown: str) -> None:
    doc = {"format": 1, "userland": [{"name": name, "type": "wait", "path": "/tmp/x"}]}
    problems = errors(json.dumps(doc))
    assert len(problems) == 1
    assert f"→ name: contains {shown}: control, bidi or zero-width characters" in problems[0]
    assert "\u202e" not in problems[0] and "\u200b" not in problems[0]


def test_a_shown_list_or_mapping_never_prints_parsed_nodes() -> None:
    from bootstrapper.manifest.report import show
    from bootstrapper.manifest.source import Node

    assert (show([Node("x")]), show({"k": Node(1)})) == ("a list", "a mapping")
