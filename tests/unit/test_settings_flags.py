"""One settings model: each flag is declared once, on its Settings field, and every command that takes
it gets that declaration (name, type, placeholder, default), built into its argparse by the model."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from gatekeeper import paths
from gatekeeper.cli import build_parser, main
from gatekeeper.commands.serve import settings_from
from gatekeeper.commands.usage import default_text
from gatekeeper.config import Settings
from gatekeeper.config.flags import FROM_FIELD, declared, option
from tests.integration.test_cli_errors import leaves

GATEKEEPER = Path(__file__).parents[2] / "gatekeeper"


def _parser(*command: str) -> argparse.ArgumentParser:
    return dict(leaves(build_parser()))[command]


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions if action.option_strings}


def test_every_setting_is_a_serve_flag_with_the_models_default_in_its_help() -> None:
    parser = _parser("serve")
    actions = _actions(parser)
    formatter = parser._get_formatter()
    for name, field in Settings.model_fields.items():
        _field, flag = declared(Settings, name)
        assert flag.default is FROM_FIELD and not flag.required, f"{name}: its default is the field's"
        action = actions[name]
        assert action.option_strings[0] == option(name)
        help_text = " ".join(formatter._expand_help(action).split())
        if flag.derived:
            assert action.default is None and f"(default: {flag.derived})" in help_text
            continue
        default = field.get_default(call_default_factory=True)
        assert action.default == (list(default) if flag.repeat else default), name
        shown = f"(default: {default_text(default)})"
        assert shown in help_text or "default" in flag.help.lower(), (name, help_text)


def test_a_shared_flag_is_the_models_declaration_in_every_command_that_takes_it() -> None:
    served = _actions(_parser("serve"))
    checked = 0
    for command, parser in leaves(build_parser()):
        for dest, action in _actions(parser).items():
            if dest not in Settings.model_fields or command == ("serve",):
                continue
            model = served[dest]
            where = f"{' '.join(command)} {action.option_strings[0]}"
            assert action.option_strings == model.option_strings, where
            parsed = (action.type, action.choices, action.metavar)
            assert parsed == (model.type, model.choices, model.metavar), where
            checked += 1
    assert checked >= 20  # admit, state, quota, authorize, authenticate, lint, who-can, replay, audit, ...


def test_serve_with_no_flags_runs_on_the_models_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = settings_from(build_parser().parse_args(["serve"]))
    assert settings == Settings(data_dir=tmp_path)
    assert settings.cert_dir == tmp_path / "certs"
    assert settings.store == f"sqlite:///{tmp_path.absolute() / paths.STORE_FILE}"


def test_data_dir_moves_the_cert_dir_and_the_store_unless_they_are_given(tmp_path: Path) -> None:
    moved = settings_from(build_parser().parse_args(["serve", "--data-dir", str(tmp_path), "--state", "."]))
    assert moved.cert_dir == tmp_path / "certs"
    assert moved.store == f"sqlite:///{tmp_path.absolute() / paths.STORE_FILE}"
    argv = ["serve", "--data-dir", str(tmp_path), "--cert-dir", "pki", "--store", "memory://", "--state", "."]
    given = settings_from(build_parser().parse_args(argv))
    assert (given.cert_dir, given.store) == (Path("pki"), "memory://")


def test_aliases_and_comma_lists_parse_to_the_settings_types() -> None:
    args = build_parser().parse_args(
        ["serve", "--admission-control", "LimitRanger, ResourceQuota", "--keep-alive-timeout", "5",
         "--api-audiences", "a,,b", "--state", "."]
    )
    settings = settings_from(args)
    assert settings.enable_admission_plugins == ("LimitRanger", "ResourceQuota")
    assert settings.idle_timeout == 5.0 and settings.api_audiences == ("a", "b")


@pytest.mark.parametrize(
    ("literal", "where"),
    [('"/gatekeeper/"', "the etcd prefix"), ('"--enable-admission-plugins"', "the plugins flag")],
)
def test_the_findings_of_the_issue_are_written_once(literal: str, where: str) -> None:
    found = [
        f"{path.relative_to(GATEKEEPER)}:{n}"
        for path in sorted(GATEKEEPER.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal in line
    ]
    assert len(found) <= 1, f"{where} is written more than once: {found}"


def test_the_flags_design_md_says_keep_kube_apiservers_names_are_declared_as_mirroring_it() -> None:
    text = " ".join((GATEKEEPER.parent / "DESIGN.md").read_text(encoding="utf-8").split())
    named = text.split("Flags keep kube-apiserver's names:", 1)[1].split("; plus", 1)[0]
    flags = re.findall(r"`(--[a-z-]+)`", named)
    assert len(flags) >= 10
    by_option = {option(name): name for name in Settings.model_fields}
    aliases = {alias: name for name in Settings.model_fields for alias in declared(Settings, name)[1].aliases}
    for flag in flags:
        name = by_option.get(flag) or aliases[flag]
        assert declared(Settings, name)[1].mirrors == "kube-apiserver", flag


def test_a_value_the_model_refuses_names_that_flag_alone(tmp_path: Path) -> None:
    """--cert-dir and --store follow --data-dir: a refused flag must not drag them into the message."""
    with pytest.raises(SystemExit) as refused:
        main(["serve", "--data-dir", str(tmp_path), "--secure-port", "70000", "--state", "."])
    assert refused.value.code == "error: --secure-port: Input should be less than or equal to 65535"
