"""The HTML report, checked in a real headless Chromium."""

import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from stance.cli import app

pytestmark = pytest.mark.browser


def test_report_renders_highlighted_sentences_in_chromium(tiny_baseline, tmp_path):
    article = tmp_path / "article.txt"
    article.write_text("Encryption gives paedophiles a place to hide.\n\nMeta has been approached for comment.\n"
                       "Privacy <b>matters</b> & so does security.", encoding="utf-8")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(article), "--out", str(out), "--model", str(tiny_baseline)])
    assert result.exit_code == 0, result.output
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required: make test installs it (as root), or run apt-get install chromium"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", out.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    assert dom.count('class="sentence label-') == 3
    assert "net-stance" in dom
    # titled by the headline, with the legend, the strip, the summary numbers and the top sentences
    assert '<h1 id="headline">Encryption gives paedophiles a place to hide.</h1>' in dom
    assert "<title>Encryption gives paedophiles a place to hide.</title>" in dom
    assert 'id="legend"' in dom and "Hover a sentence" in dom and dom.count('class="cell"') == 3
    for name in ("stance-index", "engagement", "balance", "article-label", "top-pro-encryption", "top-pro-scanning"):
        assert f'id="{name}"' in dom
    # explanations: underlined words inside the sentences, explained in the legend
    assert dom.count('<mark class="why"') >= 3 and 'id="why-note"' in dom
    assert "Privacy &lt;b&gt;matters&lt;/b&gt; &amp; so does security." in dom  # escaped, not rendered as markup
