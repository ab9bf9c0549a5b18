"""The report, built only from a run's records and rendered to one self-contained HTML file.

The machinery (template environment with autoescape, :class:`RunData`, :func:`load`, the
verdict as data, figures, :func:`render_html`) is in :mod:`zoorepro.report.core`, the
throughput table's rows in :mod:`zoorepro.report.throughput`, the figures' look in
:mod:`zoorepro.report.plotstyle`; one
function per section, each rendering ``templates/report/<name>.html.j2``, is in
:mod:`zoorepro.report.sections`.  This module is what notebooks call: ``report.load(run)``,
``report.verdict(data)``, ``report.accuracy_table(data)``, ...
"""
from __future__ import annotations

from zoorepro.report.core import *  # noqa: F401,F403
from zoorepro.report.core import (RunData, esc, figure_html, fmt, load,  # noqa: F401
                                  plot_throughput, ratio, render_html, table)
from zoorepro.report.throughput import (THROUGHPUT_HEADERS, throughput_notes,  # noqa: F401
                                        throughput_rows)
from zoorepro.report.sections import *  # noqa: F401,F403
from zoorepro.report.ladder import ladder_section  # noqa: F401
from zoorepro.report.recipetext import (recipe_section, step_markdown,  # noqa: F401
                                        title_markdown)

# the section renderers, in report order
SECTIONS = ("failure_banner", "mismatch_banner", "verdict", "accuracy_table", "predictions_sample",
            "throughput_table", "recipe_ratio_table", "e2e_table", "throughput_plot",
            "ladder_section",
            "preprocess_section", "parity_section", "export_section", "atc_section", "npu_section",
            "warnings_section", "recipe_section", "environment_section", "provenance_section",
            "notebook_links")
