"""Shell scripts from Jinja2 templates, where quoting is the machinery's job, not the author's.

Every ``{{ expression }}`` in a shell template must produce a :class:`Sh` (text already made
safe for the shell) or an ``int``; anything else stops rendering with :class:`ShellTemplateError`.
The filters make ``Sh`` values:

* ``|q``        one shell word, quoted with :func:`shlex.quote`;
* ``|argv``     a command line: each argument quoted, except :class:`Sh` arguments (fixed
                text written by our code, such as ``--device "${DEVICE_ID}"``);
* ``|comment``  text for a ``#`` comment: refused if it holds a newline or another control
                character (which would end the comment).

Values that reach a script are also checked for what they are (chip names, device ids, file
names) by :func:`check_soc_version`, :func:`check_device_ids` and :func:`check_word` before they
are quoted: quoting makes a value inert, the checks make it meaningful.
"""
from __future__ import annotations

import re
import shlex
from typing import Iterable

import jinja2

from zoorepro.errors import ShellTemplateError  # noqa: F401  (raised here; defined in errors)
from zoorepro.config import SOC_VERSION_RE


class Sh(str):
    """Text that is safe to paste into a shell script as it is."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DEVICES_RE = re.compile(r"^[0-9]{1,3}(,[0-9]{1,3}){0,31}$")
WORD_RE = re.compile(r"^[A-Za-z0-9_.,:=+/@%-]+$")


def q(value) -> Sh:
    if isinstance(value, bool) or value is None:
        raise ShellTemplateError(f"{value!r} cannot go into a shell script")
    text = str(value)
    if "\x00" in text:
        raise ShellTemplateError(f"{text!r}: a NUL byte cannot go into a shell script")
    return Sh(shlex.quote(text))


def argv(args: Iterable) -> Sh:
    return Sh(" ".join(a if isinstance(a, Sh) else q(a) for a in args))


def comment(value) -> Sh:
    text = str(value)
    if _CONTROL.search(text):
        raise ShellTemplateError(f"{text!r}: a newline or control character cannot go into a "
                                 f"comment of a shell script")
    return Sh(text)


def _finalize(value):
    if isinstance(value, Sh):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ShellTemplateError(
        f"shell template: {value!r} was not quoted; pass it through |q, |argv or |comment")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("zoorepro.ascend", "templates"),
                             undefined=jinja2.StrictUndefined, finalize=_finalize,
                             autoescape=False, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(q=q, argv=argv, comment=comment)
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


# ------------------------------------------------------------------ checks
def check_soc_version(value: str, what: str = "soc_version") -> str:
    """``Ascend310P3`` or ``310P3`` (letters and digits only); "" means unknown."""
    if value and not SOC_VERSION_RE.fullmatch(value):
        raise ShellTemplateError(f"{what}: {value!r} is not a chip name such as Ascend310P3 or "
                                 f"Ascend310B1 (letters and digits, as 'npu-smi info' prints)")
    return value


def check_device_ids(value, what: str = "device_id") -> str:
    """An NPU id (0-255) or a comma-separated list of them, as ais_bench's ``--device``."""
    text = str(value).strip()
    if isinstance(value, bool) or not DEVICES_RE.fullmatch(text) or \
            any(int(v) > 255 for v in text.split(",")):
        raise ShellTemplateError(f"{what}: {value!r} is not an NPU device id (0-255) or a "
                                 f"comma-separated list of them such as 0,1")
    return text


def check_word(value: str, what: str) -> str:
    """A plain word (file name, ATC option): letters, digits and ``_.,:=+/@%-``."""
    text = str(value)
    if not WORD_RE.fullmatch(text):
        raise ShellTemplateError(f"{what}: {text!r} holds characters a plain option or file "
                                 f"name does not (allowed: letters, digits and _.,:=+/@%-)")
    return text
