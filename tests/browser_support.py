"""Helpers of tests/test_browser.py: a person's shell, a JupyterLab server started from it, Chromium.

Everything here does what a person does with the course: ``source .venv/bin/activate`` (so PATH
starts with .venv/bin; no PYTHONPATH, no MNIST_PATH, no CNN2D_FAST, a HOME of their own) and then
``jupyter lab`` or ``nbgrader ...`` in a folder. The browser is Debian's chromium (Playwright cannot
download its own here), driven through Playwright.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from autograder import course
from autograder.course import ASSIGNMENT, ROOT  # noqa: F401  (ASSIGNMENT: for test_browser)

VENV_BIN = ROOT / ".venv" / "bin"
CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = ROOT / "build" / "test-artefacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COURSE_ID = course.settings().course_id


def person_env(home: Path) -> dict[str, str]:
    """The environment of ``env -i`` + ``source .venv/bin/activate``: nothing of this process leaks in
    (no PYTHONPATH, MNIST_PATH, CNN2D_FAST, CNN2D_MNIST_TEST_DIR, JUPYTER_*...)."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "PATH": f"{VENV_BIN}:/usr/bin:/bin", "LANG": "C.UTF-8",
            "VIRTUAL_ENV": str(ROOT / ".venv"), "USER": os.environ.get("USER", "root")}


def person_home(home: Path) -> Path:
    """A fresh HOME. JupyterLab asks once, in a pop-up, whether to fetch Jupyter news; this person
    answered No before (the setting that answer writes), so the pop-up does not cover the pages."""
    settings = Path(home) / ".jupyter" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    return Path(home)


def shell(args: list[str], *, cwd: Path, home: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command as a person would in a terminal (cwd, their env); fail loudly with its output."""
    proc = subprocess.run(args, cwd=cwd, env=person_env(home), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"`{' '.join(args)}` in {cwd} exited {proc.returncode}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


class Job:
    """A command started in a person's shell that runs in the background while other tests go on
    (the suite's slow commands); :meth:`wait` returns its run time or fails with its log."""

    def __init__(self, args: list[str], *, cwd: Path, home: Path, log: Path):
        self.args, self.log_path = args, Path(log)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self._started = time.monotonic()
        self.proc = subprocess.Popen(args, cwd=cwd, env=person_env(home), stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 900) -> float:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self._log.flush()
        if code != 0:
            raise AssertionError(f"`{' '.join(self.args)}` exited {code}:\n"
                                 + self.log_path.read_text()[-6000:])
        return time.monotonic() - self._started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_course(dest: Path) -> Path:
    """A copy of the course as an instructor has it (what autograder/nbgrader/autograde.py's
    prepare_course makes, plus release/): source/, release/ and nbgrader_config.py."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "source", dest / "source", ignore=shutil.ignore_patterns(
        ".ipynb_checkpoints", "__pycache__"))
    shutil.copytree(ROOT / "release", dest / "release", ignore=shutil.ignore_patterns(
        ".ipynb_checkpoints", "__pycache__"))
    shutil.copy(ROOT / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest


class JupyterLab:
    """``jupyter lab`` started in ``root`` from a person's shell, on 127.0.0.1, a free port, a token."""

    def __init__(self, root: Path, home: Path, log: Path, name: str):
        self.root, self.home, self.log_path, self.name = Path(root), person_home(home), Path(log), name
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def start(self, timeout: float = 120) -> "JupyterLab":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        args = ["jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                "--port-retries=0", f"--IdentityProvider.token={self.token}"]
        if os.geteuid() == 0:  # CI and this workplace run as root; a person does not
            args.append("--allow-root")
        self.proc = subprocess.Popen(
            args,
            cwd=self.root, env=person_env(self.home), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter lab ({self.name}) exited {self.proc.returncode}:\n"
                                     + self.log_path.read_text()[-4000:])
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"jupyter lab ({self.name}) did not answer in {timeout} s:\n"
                             + self.log_path.read_text()[-4000:])

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def shutdown_kernels(self) -> None:
        """Stop the kernels a test started (they hold a core's worth of TensorFlow threads idle)."""
        try:
            for kernel in self.api("api/kernels") or []:
                self.api(f"api/kernels/{kernel['id']}", method="DELETE")
        except Exception:  # noqa: BLE001  (best effort: the server is stopped at the end anyway)
            pass

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.shutdown_kernels()
            self.proc.terminate()  # SIGTERM: jupyter_server shuts its kernels down and exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        self.proc = None


def launch_chromium(playwright, user_data_dir: Path):
    """Debian's chromium with a fresh profile (a persistent context in ``user_data_dir``)."""
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
                             "(`sudo apt-get install chromium`; `python3 tasks.py test` installs it)")
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
        viewport={"width": 1400, "height": 1000}, locale="en-US")


def screenshot(page_or_locator, step: str, **kwargs) -> Path:
    """build/test-artefacts/browser/<step>.png: the page's viewport, or one element of it."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{step}.png"
    page_or_locator.screenshot(path=str(path), **kwargs)
    return path


# ------------------------------------------------------------------------------------ accessibility
# axe-core's rules for WCAG 2.0 and 2.1, levels A and AA, and its best practices (landmarks, heading
# order, unique landmark names...). axe.min.js comes inside the pinned axe-playwright-python wheel
# (requirements.txt): injected into the page from that file, nothing is fetched.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_TAGS = [*WCAG_21_AA, "best-practice"]


def axe_violations(page, tags: list[str] = AXE_TAGS) -> list[dict]:
    """axe-core run on the page as it is now (open what should be audited first): its violations."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": list(tags)}, "resultTypes": ["violations"]}
    response = Axe().run(page, options=options).response
    assert response["testEngine"]["name"] == "axe-core", response["testEngine"]
    return response["violations"]


def describe_violations(violations: list[dict], most: int = 8) -> str:
    """For an assertion message: each violation's rule id, impact, WCAG tags and the nodes it names."""
    lines = []
    for v in violations:
        tags = [t for t in v["tags"] if t.startswith("wcag") or t == "best-practice"]
        lines.append(f"- {v['id']} ({v['impact']}; {', '.join(tags)}): {v['help']} [{len(v['nodes'])} node(s)]")
        for node in v["nodes"][:most]:
            lines.append(f"    {' > '.join(map(str, node['target']))}: {node['html'][:160]}")
            lines.append("      " + " ".join((node.get("failureSummary") or "").split())[:300])
    return "\n".join(lines)
