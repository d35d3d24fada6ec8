"""One error base, rendered once: a failure a user can act on is one line, never a
traceback; library code raises no click exception."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.edfi.descriptors import DescriptorTableError
from connectors.edfi.load import EdFiLoadError
from connectors.oneroster.package import OneRosterPackageError
from connectors.source.config import SourceConfigError
from connectors.source.publisher import PublishError
from connectors.source.state import SourceStateError, SourceStateStore
from streams.cli import main
from streams.config import NotConfiguredError
from streams.errors import HallpassError
from streams.kafka.read_to_end import TopicUnreadableError
from streams.kafka.wire import RegistryAccessError
from streams.lag.collect import BrokerUnavailable
from streams.local.errors import RuntimeProblem
from streams.metrics import MetricsPortError
from streams.policy.consent import InvalidConsentEventError
from streams.policy.contracts import ContractsInvalidError
from streams.policy.retention import TopicSettingsError
from streams.policy.views import ViewError
from streams.processor.app import ProcessorSetupError
from streams.processor.dlq import TooManyInvalidError
from streams.security.acl_apply import AclApplyError
from streams.security.acl_plan import AclPlanError
from streams.security.client_settings import ClientSettingsError
from streams.security.strimzi import StrimziRenderError
from streams.security.users import UserAdminError

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
CLOSED = {
    "HALLPASS_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "HALLPASS_SCHEMA_REGISTRY_URL": "http://127.0.0.1:1",
}


@pytest.mark.parametrize(
    ("error", "other_base"),
    [
        (BrokerUnavailable, RuntimeError),
        (NotConfiguredError, RuntimeError),
        (ContractsInvalidError, ValueError),
        (TopicSettingsError, ValueError),
        (ViewError, ValueError),
        (InvalidConsentEventError, ValueError),
        (TooManyInvalidError, RuntimeError),
        (ProcessorSetupError, RuntimeError),
        (TopicUnreadableError, RuntimeError),
        (RegistryAccessError, RuntimeError),
        (RuntimeProblem, RuntimeError),
        (UserAdminError, RuntimeError),
        (StrimziRenderError, ValueError),
        (ClientSettingsError, ValueError),
        (AclPlanError, ValueError),
        (AclApplyError, RuntimeError),
        (DescriptorTableError, ValueError),
        (EdFiLoadError, ValueError),
        (PublishError, RuntimeError),
        (SourceConfigError, ValueError),
        (OneRosterPackageError, Exception),
        (MetricsPortError, Exception),
        (SourceStateError, Exception),
    ],
    ids=lambda e: e.__name__,
)
def test_every_user_facing_error_is_a_hallpass_error(
    error: type[Exception], other_base: type[Exception]
) -> None:
    assert issubclass(error, HallpassError)
    assert issubclass(error, other_base)  # `except ValueError` and the like still catch it


def test_library_code_raises_no_click_exception() -> None:
    edge = {REPO / "streams" / "cli.py", *(REPO / "streams" / "commands").glob("*.py")}
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for root in ("streams", "connectors")
        for path in (REPO / root).rglob("*.py")
        if path not in edge
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"click\.(ClickException|UsageError|BadParameter|Abort)", line)
    ]
    assert offenders == []


def invalid_contracts(tmp_path: Path) -> Path:
    """A directory with one contract whose only problem is a bad principal."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = (CONTRACTS / "measurely.yaml").read_text()
    assert "principal: User:measurely" in text
    (tmp_path / "measurely.yaml").write_text(
        text.replace("principal: User:measurely", "principal: measurely")
    )
    shutil.copy(CONTRACTS / "measurely.lock.yaml", tmp_path)
    return tmp_path


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def test_contracts_apply_with_an_invalid_contract_says_so_in_one_line(tmp_path: Path) -> None:
    contracts = invalid_contracts(tmp_path / "contracts")
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "contracts", "apply", "--contracts", str(contracts)],
        env=CLOSED,
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "measurely.yaml" in line and "principal" in line


def test_contracts_check_with_an_invalid_contract_exits_1_without_a_traceback(
    tmp_path: Path,
) -> None:
    contracts = invalid_contracts(tmp_path)
    result = CliRunner().invoke(main, ["contracts", "check", str(contracts)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert error_lines(result.stderr) == [f"Error: 1 problem(s) in {contracts}"]
    assert any("principal" in line for line in result.stderr.splitlines())


def test_a_library_error_is_rendered_once_by_the_group(tmp_path: Path) -> None:
    """A state store that cannot be opened (its directory is a file) is one line."""
    (tmp_path / "oneroster").write_text("not a directory")
    with pytest.raises(SourceStateError):
        SourceStateStore(tmp_path / "oneroster" / "x.sqlite3")
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "publish", "oneroster", str(tmp_path / "package")],
        env=CLOSED,
    )
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [line for line in result.stderr.splitlines()]
    assert "cannot open the state store" in result.stderr and "Traceback" not in result.output


def test_demo_reads_the_contracts_directory_from_the_environment(tmp_path: Path) -> None:
    """The contracts of HALLPASS_CONTRACTS_DIR are read (and refused) before the bus is
    reached."""
    shutil.copy(CONTRACTS / "measurely.yaml", tmp_path)
    (tmp_path / "broken.yaml").write_text("partner: [\n")
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "demo", "--metrics-port", "0"],
        env={**CLOSED, "HALLPASS_CONTRACTS_DIR": str(tmp_path)},
    )
    assert result.exit_code == 1
    assert "broken.yaml" in result.stderr
    assert "Traceback" not in result.output
