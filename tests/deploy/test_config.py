"""The files in deploy/ hold what the stack test cannot see one by one: limits matching settings, every unit sandboxed,
every secret named as a file, the helper scripts' refusals."""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from relais.core.secrets import SECRET_NAMES
from relais.screenings.csv_import import MAX_BYTES
from tests.deploy.stack import DEPLOY, ROOT, read_env_file

NGINX_SITE = (DEPLOY / "nginx" / "relais.conf.in").read_text()
UNITS = DEPLOY / "systemd"
SANDBOXING = {
    "User": "relais",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ReadWritePaths": "/var/lib/relais",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service",
    "EnvironmentFile": "/etc/relais/relais.env",
    "UMask": "0077",
}


def _size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([km]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEPLOY / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_nginx_body_limits_match_the_application() -> None:
    server_limit = re.search(r"^    client_max_body_size (\S+);", NGINX_SITE, re.M)
    assert server_limit and settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= _size(server_limit.group(1)) < 3_000_000
    for upload in ("/imports/", "/api/v1/submissions/csv"):
        block = re.search(r"location = " + re.escape(upload) + r" \{(.*?)\}", NGINX_SITE, re.S)
        assert block, upload
        limit = re.search(r"client_max_body_size (\S+);", block.group(1))
        assert limit and MAX_BYTES < _size(limit.group(1)) <= MAX_BYTES + 2 * 1024 * 1024, upload


def test_nginx_overwrites_forwarding_headers_and_keeps_tls_modern() -> None:
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in NGINX_SITE
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in NGINX_SITE
    assert "$proxy_add_x_forwarded_for" not in NGINX_SITE
    assert re.findall(r"^\s*ssl_protocols (.*);", NGINX_SITE, re.M) == ["TLSv1.2 TLSv1.3"]
    ciphers = re.search(r"^\s*ssl_ciphers (\S+);", NGINX_SITE, re.M)
    assert ciphers and all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in ciphers.group(1).split(":"))
    assert NGINX_SITE.count("server_tokens off;") == NGINX_SITE.count("server {") == 2
    hsts = re.findall(r'Strict-Transport-Security "max-age=(\d+)', NGINX_SITE)
    assert hsts and all(int(age) >= 63072000 for age in hsts)
    assert "autoindex on" not in NGINX_SITE and "disable_symlinks on;" in NGINX_SITE


def test_every_service_is_sandboxed_and_runs_an_existing_command() -> None:
    services = sorted(UNITS.glob("*.service"))
    assert {p.stem for p in services} == {"relais-web", "relais-workers", "relais-backup", "relais-doctor"}
    commands = {p.stem for p in ROOT.glob("relais/*/management/commands/*.py")}
    for unit in services:
        lines = [line.split("=", 1) for line in unit.read_text().splitlines() if "=" in line and not line.startswith("#")]
        values: dict[str, list[str]] = {}
        for key, value in lines:
            values.setdefault(key, []).append(value)
        for key, wanted in SANDBOXING.items():
            assert values.get(key) == [wanted], (unit.name, key, values.get(key))
        for command in values.get("ExecStart", []) + values.get("ExecStartPost", []):
            if "manage.py" in command:
                name = command.split("manage.py", 1)[1].split()[0]
                assert name in commands, (unit.name, name)
    for timer in ("relais-backup", "relais-doctor"):
        assert (UNITS / f"{timer}.timer").exists()
    socket_unit = (UNITS / "relais-web.socket").read_text()
    assert "SocketMode=0660" in socket_unit and "SocketGroup=www-data" in socket_unit


def test_environment_template_names_every_secret_as_a_file_and_holds_none() -> None:
    example = read_env_file(DEPLOY / "relais.env.example")
    for name in SECRET_NAMES:
        assert example.get(f"{name}_FILE", "").startswith("/etc/relais/secrets/"), name
        assert name not in example, f"{name} must be a file, not a value"
    for required in ("RELAIS_ENV", "RELAIS_ALLOWED_HOSTS", "RELAIS_PUBLIC_URL", "RELAIS_TRUSTED_PROXIES", "DATABASE_URL"):
        assert example.get(required), required
    assert example["RELAIS_ENV"] == "production" and example["RELAIS_TRUSTED_PROXIES"] == "unix"
    assert example["RELAIS_PUBLIC_URL"].startswith("https://")
    # Every setting it names is one Relais reads (a typo would be silently ignored).
    source = "\n".join(p.read_text() for p in ROOT.glob("relais/**/*.py"))
    for name in example:
        base = name.removesuffix("_FILE")
        assert f'"{name}"' in source or f'"{base}"' in source, f"{name} is not read anywhere in relais/"


def test_render_refuses_missing_unused_and_unsafe_values(tmp_path: Path) -> None:
    template = tmp_path / "t.conf.in"
    template.write_text("root @@ROOT@@;\nlisten @@PORT@@;\n")
    good = _script("render", str(template), "ROOT=/srv/x", "PORT=127.0.0.1:8443")
    assert good.returncode == 0 and good.stdout == "root /srv/x;\nlisten 127.0.0.1:8443;\n"
    assert "missing values: PORT" in _script("render", str(template), "ROOT=/srv/x").stderr
    assert "for no placeholder: EXTRA" in _script("render", str(template), "ROOT=/a", "PORT=1", "EXTRA=2").stderr
    for unsafe in ("/srv/x; autoindex on", "/srv/x\n", '/srv/"x', "/srv/{x}"):
        result = _script("render", str(template), f"ROOT={unsafe}", "PORT=1")
        assert result.returncode != 0, unsafe


def test_static_allowlist_lists_only_hashed_regular_files(tmp_path: Path) -> None:
    static = tmp_path / "static"
    (static / "docs").mkdir(parents=True)
    for name in ("relais.css", "relais.0123456789ab.css", "docs/api.js", "docs/api.fedcba987654.js", "docs/api.fedcba987654.js.map"):
        (static / name).write_text("x")
    (static / "dropped.txt").write_text("later")
    paths = {"relais.css": "relais.0123456789ab.css", "docs/api.js": "docs/api.fedcba987654.js"}
    paths["docs/api.js.map"] = "docs/api.fedcba987654.js.map"
    (static / "staticfiles.json").write_text(json.dumps({"paths": paths, "version": "1.1"}))
    out = tmp_path / "allow.conf"
    assert _script("static-allowlist", str(static), str(out)).returncode == 0
    listed = re.findall(r'"(/static/[^"]+)" 1;', out.read_text())
    assert listed == ["/static/docs/api.fedcba987654.js", "/static/relais.0123456789ab.css"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    # A hashed name replaced by a symlink: refused, the previous allowlist stays.
    target = static / "relais.0123456789ab.css"
    target.unlink()
    target.symlink_to(tmp_path / "allow.conf")
    refused = _script("static-allowlist", str(static), str(out))
    assert refused.returncode != 0 and "not a regular file" in refused.stderr
    assert re.findall(r'"(/static/[^"]+)" 1;', out.read_text()) == listed


def test_make_secrets_writes_private_files_and_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    first = _script("make-secrets", "--dir", str(folder))
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = {p.name: p.read_text() for p in folder.iterdir()}
    assert sorted(files) == sorted(n.lower() for n in SECRET_NAMES)
    assert len(set(files.values())) == len(files)
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.getuid()
    assert [line.split("=")[0] for line in first.stdout.splitlines()] == [f"{n}_FILE" for n in SECRET_NAMES]
    again = _script("make-secrets", "--dir", str(folder))
    assert again.returncode == 0 and "kept, already there" in again.stdout
    assert {p.name: p.read_text() for p in folder.iterdir()} == files


def test_relais_manage_runs_manage_py_with_only_the_environment_file(tmp_path: Path) -> None:
    env_file = tmp_path / "relais.env"
    env_file.write_text(f'# settings\nRELAIS_ENV=test\nRELAIS_VAR_DIR={tmp_path / "var"}\nRELAIS_DPO_NAME="Délégué DPO"\n')
    code = "import os; print(oct(os.umask(0)), os.environ['RELAIS_DPO_NAME'], 'LEAKED' in os.environ)"
    env = {**os.environ, "RELAIS_HOME": str(ROOT), "RELAIS_ENV_FILE": str(env_file), "RELAIS_USER": pwd.getpwuid(os.getuid()).pw_name}
    for mask, shown in (("", "0o77"), ("027", "0o27")):
        run_env = {**env, "LEAKED": "1", **({"RELAIS_UMASK": mask} if mask else {})}
        argv = [str(DEPLOY / "relais-manage"), "shell", "-c", code]
        result = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[-2] == f"{shown} Délégué DPO False"
