"""g4f's default provider end to end: `python messages_stream.py` with no --provider, offline.

Each case runs the script against the stand-in in tests/standin.py: g4f's provider registry, and the first
two providers g4f 8.8.6 tries for gpt-4 (CopilotApp, then Airforce), on 127.0.0.1 over TLS. Every other
provider on g4f's list fails at once (its host name does not resolve), as on a machine without internet,
except where a test asks the stand-in to stand in `everywhere`. The stand-in records every request whole.
Each test has its own g4f cache and config folders (conftest's `isolated`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import closed_port, error_lines, final_line, needs_registry, run_script, since
from standin import HOSTS, REGISTRY_URL, internet

from messages_stream import PROMPT

pytestmark = needs_registry

COPILOT = "Hello from Copilot!"
AIRFORCE = "Hello from Airforce!"
TIMEOUT = 1  # --timeout for the cases that wait for silence
# Generous: proves only that the run did not wait out aiohttp's 300 s or g4f's unbounded registry look-up.
NOT_WAITED_OUT = 30
KEY = "sk-standin-secret-12345"  # a G4F_API_KEY that must reach no host on the default path
NO_USABLE_LIST = "error: g4f's provider registry sent no usable list of providers; try again later"
REGISTRY_LINES = {
    "html500": NO_USABLE_LIST,
    "json503": NO_USABLE_LIST,
    "nodefault": NO_USABLE_LIST,
    "notjson": NO_USABLE_LIST,
    "hang": f"error: no response from g4f's provider registry within {TIMEOUT} s",
    "unreachable": f"error: cannot reach g4f's provider registry ({REGISTRY_URL}); "
    "check the network and any proxy settings",
}
EVERY_PROVIDER_FAILED = "error: every provider that g4f tried failed; the first: "
COPILOT_FAILED = "Error during CopilotApp interaction: "  # how CopilotApp's own reason begins
CUT = 150  # characters of the first provider's message that the error line keeps


def browser_installed() -> bool:
    """Whether g4f finds a Chrome: then its ChatGPT and Copilot providers would start one, a process that
    the stand-in cannot keep offline, so the cases that reach them are skipped. A g4f without this look-up
    (before 7.8.12) runs none of these tests: they need its provider registry."""
    try:
        from g4f.requests.cdp import find_chrome_path
    except ImportError:
        return False
    return find_chrome_path() is not None


needs_no_browser = pytest.mark.skipif(
    browser_installed(), reason="g4f would start the installed browser, which goes online"
)


def test_the_default_path_streams_the_first_providers_answer_without_falling_back(isolated: Path) -> None:
    """The everyday case: the registry, then CopilotApp answers over its WebSocket, and no other provider is
    asked."""
    with internet() as net:
        result = run_script(home=isolated, **net.env())
    assert (result.code, result.err) == (0, "")
    assert result.out == COPILOT + final_line(COPILOT)
    assert not net.answered("api.airforce")  # the first provider answered: no fallback
    # The prompt went in a WebSocket message, and the stand-in kept that too: a secret would show there.
    prompt = [request.path.partition("?")[0] for request in net.requests if request.mentions(PROMPT)]
    assert prompt == ["/c/api/chat"], net.seen


@pytest.mark.parametrize("fault", ["500", "429", "empty"])
def test_g4f_falls_back_to_the_next_provider_and_verbose_names_it(isolated: Path, fault: str) -> None:
    """g4f skips a provider that raises or says nothing, and the next one's answer is a success; -v names
    who actually answered, in one line, not the provider g4f tried first."""
    with internet(copilot=fault) as net:
        result = run_script("-v", home=isolated, **net.env())
    assert result.code == 0
    assert result.out == AIRFORCE + final_line(AIRFORCE)
    [line] = result.err.splitlines()
    assert line.startswith("Airforce answered with "), result.err
    assert "CopilotApp" not in result.err  # tried first, but it is not who answered
    assert net.answered("copilot.microsoft.com")  # it was asked first


def test_the_api_key_reaches_no_host_when_g4f_falls_back(isolated: Path) -> None:
    """G4F_API_KEY is for a base URL the user names: g4f's default path must not hand it to the providers it
    tries, Airforce (which would send it as a bearer token) nor any other host."""
    with internet(copilot="500", everywhere=True) as net:
        result = run_script(home=isolated, G4F_API_KEY=KEY, **net.env())
    assert (result.code, result.err) == (0, "")
    assert result.out == AIRFORCE + final_line(AIRFORCE)
    assert net.answered("copilot.microsoft.com") and net.answered("api.airforce")
    assert net.mentions(KEY) == []  # no header, path or body of any request to any host


@needs_no_browser
def test_the_api_key_reaches_no_host_when_every_provider_fails(isolated: Path) -> None:
    """With every provider failing, g4f tries them all: still none of them, nor any host they ask for
    their model lists, gets G4F_API_KEY; and the run ends in one error line."""
    with internet(copilot="500", airforce="429", everywhere=True) as net:
        result = run_script(home=isolated, G4F_API_KEY=KEY, **net.env())
    assert (result.code, result.out) == (1, final_line(""))
    [line] = result.err.splitlines()
    assert line.startswith(EVERY_PROVIDER_FAILED + COPILOT_FAILED), line
    assert net.answered("api.airforce") and net.hosts() - set(HOSTS)  # the other providers were seen too
    assert net.mentions(KEY) == []  # no header, path or body of any request to any host


@needs_no_browser
def test_every_provider_failing_is_one_line_with_the_first_reason_and_debug_lists_each_failure(
    isolated: Path,
) -> None:
    """g4f's most reported failure: one short line with the first provider's reason (CopilotApp's), cut at
    CUT characters; --debug shows each provider's failure, then the same line."""
    with internet(copilot="500", airforce="429") as net:
        result = run_script(home=isolated, **net.env())
        debug = run_script("--debug", home=isolated, traceback=True, **net.env())
    assert (result.code, result.out) == (1, final_line(""))
    [line] = result.err.splitlines()
    assert line.startswith(EVERY_PROVIDER_FAILED + COPILOT_FAILED), line
    assert len(line.removeprefix(EVERY_PROVIDER_FAILED)) <= CUT, line
    assert "Failed to start conversation" in line  # CopilotApp's own reason, the first one
    # --debug shows each provider's failure, one by one (g4f logs "NAME failed: REASON"), then the same line.
    failed = set(re.findall(r"(\w+) failed: ", debug.err))
    assert (debug.code, error_lines(debug.err)) == (1, [line])
    assert debug.err.splitlines()[-1] == line
    assert {"CopilotApp", "Airforce"} <= failed, debug.err


@pytest.mark.parametrize(("copilot", "text"), [("hang", ""), ("partial", COPILOT)])
def test_a_provider_that_goes_silent_ends_the_run_within_the_timeout_without_falling_back(
    isolated: Path, copilot: str, text: str
) -> None:
    """A provider that goes silent, before its answer or in the middle of it, is not waited for (g4f itself
    would wait 300 s, aiohttp's default): the run ends after --timeout, keeps what came, and g4f tries no
    other provider after it."""
    with internet(copilot=copilot) as net:
        started = time.monotonic()
        result = run_script("--timeout", str(TIMEOUT), home=isolated, **net.env())
        elapsed = time.monotonic() - started
    assert elapsed < NOT_WAITED_OUT, elapsed
    assert result.code == 1
    assert result.err == f"error: no response from the provider within {TIMEOUT} s\n"
    assert result.out == text + final_line(text)  # what came before the silence is kept
    assert not net.answered("api.airforce")  # the silence ended the run: no fallback after it


@pytest.mark.parametrize(
    "mode",
    [pytest.param(mode, marks=[pytest.mark.needs_alarm] * (mode == "hang")) for mode in REGISTRY_LINES],
)
def test_registry_failure_names_the_registry(isolated: Path, mode: str) -> None:
    """Each way the registry fails is blamed on the registry, never on a provider name the user never gave;
    a registry that never answers is not waited for. The registry is loaded before main() runs: nothing on
    stdout, not even the final line."""
    with internet(registry=mode) as net:
        started = time.monotonic()
        result = run_script("--timeout", str(TIMEOUT), home=isolated, **net.env())
        elapsed = time.monotonic() - started
    assert (result.code, result.out) == (1, "")
    assert result.err == REGISTRY_LINES[mode] + "\n"
    assert elapsed < NOT_WAITED_OUT, elapsed
    assert not net.answered("copilot.microsoft.com")


# The broken answers that are JSON: g4f caches those for the rest of the day.
@pytest.mark.parametrize("mode", ["json503", "nodefault"])
@since(8, 8, 0, needs="g4f.config.get_cache_dir(), which says where g4f keeps the day's list")
def test_registry_cached_broken_heals_by_itself(isolated: Path, mode: str) -> None:
    """g4f would read the broken copy all day; the script must not let it, so the next run just works."""
    with internet(registry=mode) as net:
        broken = run_script(home=isolated, **net.env())
        assert (broken.code, broken.out, broken.err) == (1, "", NO_USABLE_LIST + "\n")
        net.registry = "healthy"
        healed = run_script(home=isolated, **net.env())
    assert (healed.code, healed.err) == (0, "")
    assert healed.out == COPILOT + final_line(COPILOT)
    assert net.seen.count("GET g4f.dev/dist/js/providers.json") == 2  # downloaded again, not read from cache
    [cached] = isolated.rglob("providers.json")  # wherever g4f keeps it
    assert '"default"' in cached.read_text(encoding="utf-8")  # and g4f cached the healthy one


def test_the_days_list_stays_cached_when_what_failed_was_not_the_registry(isolated: Path) -> None:
    """Only a failure of the registry itself drops g4f's copy of the day's list: after a provider's silence,
    or a base URL's refusal, the next run reads the list from g4f's cache instead of downloading it again."""
    with internet(copilot="hang") as net, closed_port() as port:
        silent = run_script("--timeout", str(TIMEOUT), home=isolated, **net.env())
        refused = run_script("--provider", f"http://127.0.0.1:{port}/v1", home=isolated, **net.env())
        net.copilot = "text"
        again = run_script(home=isolated, **net.env())
    assert (silent.code, refused.code, again.code) == (1, 1, 0), (silent.err, refused.err, again.err)
    assert again.out == COPILOT + final_line(COPILOT)
    assert net.seen.count("GET g4f.dev/dist/js/providers.json") == 1  # once, then read from g4f's cache


@needs_no_browser
def test_registry_download_goes_through_https_proxy(isolated: Path) -> None:
    """The truth the README tells about proxies: `requests`, which downloads g4f's registry, follows
    HTTPS_PROXY; the providers' aiohttp does not. No name resolves in this run, so only the proxy reaches
    the stand-in: the registry arrives, and then every provider fails, CopilotApp first, at its name."""
    with internet() as net:
        result = run_script(home=isolated, **net.proxied_env())
    assert (result.code, result.out) == (1, final_line(""))
    reason = (  # CopilotApp's, longer than CUT: the line keeps its start
        f"{COPILOT_FAILED}Cannot connect to host copilot.microsoft.com:443 ssl:default "
        "[copilot.microsoft.com: offline in this test (tests/standin_site)]"
    )
    assert result.err == EVERY_PROVIDER_FAILED + reason[:CUT] + "\n"
    assert net.proxied[0] == "CONNECT g4f.dev:443"
    assert net.seen == ["GET g4f.dev/dist/js/providers.json"]  # through the tunnel, and nothing else
