"""g4f's default provider end to end (issue 8): `python messages_stream.py` with no --provider, offline.

Each case runs the script against the stand-in in tests/standin.py: g4f's provider registry, and the first
two providers g4f 8.8.6 tries for gpt-4 (CopilotApp, then Airforce), on 127.0.0.1 over TLS. Every other
provider on g4f's list fails at once (its host name does not resolve), as on a machine without internet.
Each test has its own g4f cache and config folders (conftest's `isolated`).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import error_lines, final_line, run_script
from standin import REGISTRY_URL, internet

COPILOT = "Hello from Copilot!"
AIRFORCE = "Hello from Airforce!"
TIMEOUT = 1  # --timeout for the cases that wait for silence; each one must end within TIMEOUT + 2 s
NO_USABLE_LIST = (
    f"error: g4f's provider registry ({REGISTRY_URL}) sent no usable list of providers; try again later"
)
REGISTRY_LINES = {
    "html500": NO_USABLE_LIST,
    "json503": NO_USABLE_LIST,
    "nodefault": NO_USABLE_LIST,
    "notjson": NO_USABLE_LIST,
    "hang": f"error: no response from g4f's provider registry within {TIMEOUT} s",
    "unreachable": f"error: cannot reach g4f's provider registry ({REGISTRY_URL}); "
    "check the network and any proxy settings",
}


def browser_installed() -> bool:
    """Whether g4f finds a Chrome: then its ChatGPT and Copilot providers would start one, a process that
    the stand-in cannot keep offline, so the cases that reach them are skipped."""
    from g4f.requests.cdp import find_chrome_path

    return find_chrome_path() is not None


def test_first_provider_streams(isolated: Path) -> None:
    """The everyday case: the registry, then CopilotApp answers over its WebSocket."""
    with internet() as net:
        result = run_script(home=isolated, **net.env())
    assert (result.returncode, error_lines(result.stderr)) == (0, [])
    assert result.stdout == COPILOT + final_line(COPILOT)
    assert not net.answered("api.airforce")  # the first provider answered: no fallback


@pytest.mark.parametrize("fault", ["500", "429", "empty"])
def test_first_provider_fails_and_g4f_falls_back(isolated: Path, fault: str) -> None:
    """g4f skips a provider that raises or says nothing, and the next one's answer is a success."""
    with internet(copilot=fault) as net:
        result = run_script(home=isolated, **net.env())
    assert (result.returncode, error_lines(result.stderr)) == (0, [])
    assert result.stdout == AIRFORCE + final_line(AIRFORCE)
    assert net.answered("copilot.microsoft.com")  # it was asked first


def test_verbose_names_the_provider_that_answered(isolated: Path) -> None:
    """-v names who actually answered after a fallback, not the provider g4f tried first."""
    with internet(copilot="500") as net:
        result = run_script("-v", home=isolated, **net.env())
    assert (result.returncode, error_lines(result.stderr)) == (0, [])
    assert result.stdout == AIRFORCE + final_line(AIRFORCE)
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 2 and "Airforce" in lines[0], result.stderr
    assert "CopilotApp" not in result.stderr  # tried first, but it is not who answered


@pytest.mark.skipif(browser_installed(), reason="g4f would start the installed browser, which goes online")
def test_every_provider_fails(isolated: Path) -> None:
    """g4f's most reported failure: one short line with the count and the first reason; --debug has all."""
    with internet(copilot="500", airforce="429") as net:
        result = run_script(home=isolated, **net.env())
        debug = run_script("--debug", home=isolated, **net.env())
    assert (result.returncode, result.stdout) == (1, final_line(""))
    [line] = error_lines(result.stderr)
    assert len(line) <= 200, line
    found = re.match(r"error: all (\d+) providers that g4f tried failed; the first, CopilotApp: ", line)
    assert found, line
    assert "Failed to start conversation" in line  # CopilotApp's own reason, the first one
    # --debug shows each provider's failure, one by one (g4f logs "NAME failed: REASON").
    failed = set(re.findall(r"(\w+) failed: ", debug.stderr))
    assert debug.returncode == 1
    assert {"CopilotApp", "Airforce"} <= failed and len(failed) == int(found[1]) >= 2, debug.stderr


@pytest.mark.parametrize(("copilot", "text"), [("hang", ""), ("partial", COPILOT)])
def test_first_provider_never_answers(isolated: Path, copilot: str, text: str) -> None:
    """A provider that goes silent is not waited for (g4f itself would wait 300 s, aiohttp's default)."""
    with internet(copilot=copilot) as net:
        started = time.monotonic()
        result = run_script("--timeout", str(TIMEOUT), home=isolated, **net.env())
        elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + 2, elapsed
    assert result.returncode == 1
    assert error_lines(result.stderr) == [f"error: no response from the provider within {TIMEOUT} s"]
    assert result.stdout == text + final_line(text)  # what came before the silence is kept


@pytest.mark.parametrize(
    "mode", [pytest.param(mode, marks=[pytest.mark.needs_belt] * (mode == "hang")) for mode in REGISTRY_LINES]
)
def test_registry_failure_names_the_registry(isolated: Path, mode: str) -> None:
    """Each way the registry fails is blamed on the registry, never on a provider name the user never gave."""
    with internet(registry=mode) as net:
        started = time.monotonic()
        result = run_script("--timeout", str(TIMEOUT), home=isolated, **net.env())
        elapsed = time.monotonic() - started
    assert "unknown provider" not in result.stderr
    assert (result.returncode, result.stdout) == (1, final_line(""))
    assert error_lines(result.stderr) == [REGISTRY_LINES[mode]]
    assert elapsed < TIMEOUT + 2, elapsed
    assert not net.answered("copilot.microsoft.com")


# The broken answers that are JSON: g4f caches those for the rest of the day.
@pytest.mark.parametrize("mode", ["json503", "nodefault"])
def test_registry_cached_broken_heals_by_itself(isolated: Path, mode: str) -> None:
    """g4f would read the broken copy all day; the script must not let it, so the next run just works."""
    cached = isolated / "cache" / ".models" / datetime.today().strftime("%Y-%m-%d") / "providers.json"
    with internet(registry=mode) as net:
        broken = run_script(home=isolated, **net.env())
        assert error_lines(broken.stderr) == [NO_USABLE_LIST]
        net.registry = "healthy"
        healed = run_script(home=isolated, **net.env())
    assert (healed.returncode, error_lines(healed.stderr)) == (0, [])
    assert healed.stdout == COPILOT + final_line(COPILOT)
    assert net.seen.count("GET g4f.dev/dist/js/providers.json") == 2  # downloaded again, not read from cache
    assert '"default"' in cached.read_text(encoding="utf-8")  # and g4f cached the healthy one


def test_registry_download_goes_through_https_proxy(isolated: Path) -> None:
    """The truth the README tells about proxies: `requests`, which downloads g4f's registry, follows
    HTTPS_PROXY. (No name resolves in this run: only the proxy can reach the stand-in.)"""
    with internet() as net:
        run_script(home=isolated, **net.proxied_env())
    assert net.proxied[0] == "CONNECT g4f.dev:443"
    assert net.seen[0] == "GET g4f.dev/dist/js/providers.json"
