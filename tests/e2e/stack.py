"""What the browser tests with their own data share: a Relais environment with development secrets, a gunicorn on a
free loopback port, a pharmacist with a known TOTP key, and the login a returning pharmacist does."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.test_journey import REPO, Server, Session, Totp, _free_port, _get, _manage

BIN = Path(sys.executable).parent


def dev_env(var_dir: Path) -> dict[str, str]:
    """The environment of a development Relais using ``var_dir`` (secrets generated there), none of the test run's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_") and k != "DATABASE_URL"}
    env.update(RELAIS_VAR_DIR=str(var_dir), RELAIS_ENV="development", PYTHONDONTWRITEBYTECODE="1")
    subprocess.run(
        [sys.executable, "-m", "relais.core.devsecrets", str(var_dir / "secrets")], cwd=REPO, env=env, check=True, capture_output=True
    )
    return env


def new_totp() -> tuple[str, Totp]:
    """A TOTP key as django-otp stores it (hex) and the authenticator that reads it."""
    key = secrets.token_bytes(20)
    return key.hex(), Totp(base64.b32encode(key).decode().rstrip("="))


def answers(base_url: str) -> bool:
    try:
        return _get(base_url, "/healthz")[0] == 200
    except OSError:
        return False


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, *, workers: int = 2) -> Iterator[str]:
    """A gunicorn serving Relais on a free loopback port, up (answering /healthz) when this yields its base URL."""
    base_url = f"http://127.0.0.1:{_free_port()}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "relais.wsgi:application", "--bind", base_url.removeprefix("http://"), "--workers", str(workers)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not answers(base_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def served(var_dir: Path, setup: str, values: dict[str, str]) -> Iterator[tuple[Server, Totp]]:
    """A migrated development database, ``setup`` run in ``manage.py shell`` (``%(key)s`` is a new TOTP key, with
    ``values``), and gunicorn serving it: the server and the authenticator for the TOTP key."""
    env = dev_env(var_dir)
    _manage(env, "migrate", "--no-input", "-v", "0")
    key, authenticator = new_totp()
    _manage(env, "shell", "-c", setup % {**values, "key": key})
    with gunicorn(env, var_dir / "gunicorn.log") as base_url:
        yield Server(base_url=base_url, var_dir=var_dir, first_invitation="", env=env), authenticator


def log_in(session: Session, *, email: str, password: str, authenticator: Totp) -> None:
    """A returning pharmacist: password, then the code from their phone; axe on both pages; ends on today's page."""
    page = session.page
    session.goto("/login/")
    session.check()
    page.locator("#id_username").fill(email)
    page.locator("#id_password").fill(password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(session.url("/mfa/"))
    session.check("code")
    page.locator("#id_token").fill(authenticator.code())
    page.keyboard.press("Enter")
    expect(page).to_have_url(session.url("/"))
