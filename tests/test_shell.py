"""ascend.shell: the SoC-version pattern is one fact; the script's bash check is the same."""
import re

import pytest

from conftest import ROOT

from zoorepro.ascend import shell
from zoorepro.config import SOC_VERSION_RE
from zoorepro.errors import ShellTemplateError

TEMPLATE = ROOT / "lib" / "zoorepro" / "ascend" / "templates" / "run_on_npu.sh.j2"


def test_the_scripts_bash_pattern_is_the_configs():
    bash = re.search(r'"\$SOC_VERSION" =~ (\S+) \]\]', TEMPLATE.read_text()).group(1)
    assert bash == SOC_VERSION_RE.pattern


def test_shell_checks_soc_versions_with_the_configs_pattern():
    shell.check_soc_version("Ascend310P3")
    for bad in ("Ascend310P3; rm -rf /", "x", "Ascend 310"):
        with pytest.raises(ShellTemplateError):
            shell.check_soc_version(bad)
