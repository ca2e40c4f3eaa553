"""Serving leaks: only collected, hashed static files are served; no source map; no demo patient in the OpenAPI document."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ninja
import pytest
from django.conf import settings
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings

from relais.accounts.management.commands.seed_demo import DEMO_PATIENT
from relais.core.staticserve import CollectedOnlyWhiteNoiseMiddleware, collected_names
from tests.core.test_production_settings import prod_env  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "relais.core.staticserve.CollectedStaticStorage"},
}
# A source map reference as browsers read it: a `//# sourceMappingURL=` line or a `/*# sourceMappingURL= */` comment.
MAP_COMMENT = re.compile(rb"(?m)^[ \t]*//[#@] ?sourceMappingURL=|/\*[#@] ?sourceMappingURL=")


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root, STORAGES=PRODUCTION_STORAGES):
        call_command("collectstatic", interactive=False, verbosity=0)
    yield root


def _manifest(root: Path) -> dict[str, str]:
    return dict(json.loads((root / "staticfiles.json").read_text())["paths"])


def _production_middleware(root: Path) -> Any:
    def not_found(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status=404)

    with override_settings(STATIC_ROOT=root, STORAGES=PRODUCTION_STORAGES, WHITENOISE_AUTOREFRESH=False, WHITENOISE_USE_FINDERS=False):
        return CollectedOnlyWhiteNoiseMiddleware(not_found)


def _status(middleware: Any, path: str, **headers: str) -> int:
    return int(middleware(RequestFactory().get(path, **headers)).status_code)


def test_no_source_map_is_collected(collected: Path) -> None:
    package_css = Path(ninja.__file__).parent / "static" / "ninja" / "swagger-ui.css"
    assert MAP_COMMENT.search(package_css.read_bytes())  # the bundle does reference a map
    assert (package_css.parent / "swagger-ui.css.map").exists()
    files = [p for p in collected.rglob("*") if p.is_file()]
    assert any(p.name.startswith("swagger-ui.") and p.suffix == ".css" for p in files)
    assert not [p for p in files if ".map" in p.name]
    referencing = [p.name for p in files if p.suffix in {".js", ".css"} and MAP_COMMENT.search(p.read_bytes())]
    assert referencing == []


def test_source_maps_are_not_served_in_development(client: Client) -> None:
    assert client.get("/static/ninja/swagger-ui.css").status_code == 200
    for name in ("swagger-ui.css.map", "swagger-ui-bundle.js.map", "redoc.standalone.js.map"):
        assert client.get(f"/static/ninja/{name}").status_code == 404


def test_only_hashed_collected_files_are_served(collected: Path) -> None:
    manifest = _manifest(collected)
    middleware = _production_middleware(collected)
    hashed_css = manifest["relais.css"]
    assert hashed_css != "relais.css"
    response = middleware(RequestFactory().get(f"/static/{hashed_css}", HTTP_ACCEPT_ENCODING="gzip"))
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    assert _status(middleware, f"/static/{manifest['ninja/swagger-ui-bundle.js']}") == 200
    assert collected_names(collected) == set(manifest.values())
    # The unhashed copies and the manifest itself exist on disk but are not served.
    for path in ("relais.css", "ninja/swagger-ui.css", "staticfiles.json", f"{hashed_css}.gz", ""):
        assert (collected / path).exists()
        assert _status(middleware, f"/static/{path}") == 404, path


def test_dropped_files_and_symlinks_are_not_served(collected: Path, tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    # A copy of the collection (the module fixture stays pristine), then what an intruder or a careless operator adds.
    subprocess.run(["cp", "-a", f"{collected}/.", str(root)], check=True)
    manifest = _manifest(root)
    secret = tmp_path / "outside" / "master.key"
    secret.parent.mkdir()
    secret.write_text("not for the web")
    secret.chmod(0o600)
    (root / "dropped.txt").write_text("readable, but not collected")
    (root / "backup.sql").write_text("dump")
    (root / "link.css").symlink_to(secret)
    (root / "linkdir").symlink_to(secret.parent, target_is_directory=True)
    # A collected name replaced by a symlink, and a collected file's .gz variant replaced by one.
    replaced = manifest["notice.css"]
    (root / replaced).unlink()
    (root / replaced).symlink_to(secret)
    gz_swapped = manifest["relais.css"]
    (root / f"{gz_swapped}.gz").unlink()
    (root / f"{gz_swapped}.gz").symlink_to(secret)
    # A manifest entry pointing outside the folder (a tampered manifest) is refused too.
    tampered = json.loads((root / "staticfiles.json").read_text())
    tampered["paths"]["evil"] = "../outside/master.key"
    tampered["paths"]["evil2"] = "linkdir/master.key"
    (root / "staticfiles.json").write_text(json.dumps(tampered))

    middleware = _production_middleware(root)
    for path in ("dropped.txt", "backup.sql", "link.css", "linkdir/master.key", replaced, "../outside/master.key"):
        assert _status(middleware, f"/static/{path}") == 404, path
    response = middleware(RequestFactory().get(f"/static/{gz_swapped}", HTTP_ACCEPT_ENCODING="gzip"))
    assert response.status_code == 200 and "Content-Encoding" not in response  # served plain, not via the link
    assert b"not for the web" not in b"".join(response.streaming_content)
    assert _status(middleware, f"/static/{manifest['progress.js']}") == 200


def test_development_never_serves_static_root(collected: Path) -> None:
    (collected / "dropped-dev.txt").write_text("x")
    try:
        with override_settings(STATIC_ROOT=collected, WHITENOISE_AUTOREFRESH=True, WHITENOISE_USE_FINDERS=True):
            middleware = CollectedOnlyWhiteNoiseMiddleware(lambda request: HttpResponse(status=404))
            assert _status(middleware, "/static/dropped-dev.txt") == 404
            assert _status(middleware, f"/static/{_manifest(collected)['relais.css']}") == 404
            assert _status(middleware, "/static/relais.css") == 200  # from the source folder, through the finders
    finally:
        (collected / "dropped-dev.txt").unlink()


def test_settings_wire_the_allowlist() -> None:
    assert "relais.core.staticserve.CollectedOnlyWhiteNoiseMiddleware" in settings.MIDDLEWARE
    assert "whitenoise.middleware.WhiteNoiseMiddleware" not in settings.MIDDLEWARE
    assert all(f.startswith("relais.core.staticserve.") for f in settings.STATICFILES_FINDERS)


PRODUCTION_SCRIPT = """
import os, sys
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.test import Client
assert settings.STORAGES["staticfiles"]["BACKEND"] == "relais.core.staticserve.CollectedStaticStorage"
call_command("collectstatic", interactive=False, verbosity=0)
root = settings.STATIC_ROOT
os.symlink(sys.argv[1], os.path.join(root, "key.txt"))
with open(os.path.join(root, "dropped.txt"), "w") as f:
    f.write("x")
from django.contrib.staticfiles.storage import staticfiles_storage
client = Client(HTTP_HOST="relais.example.org")
for path in ("/static/" + staticfiles_storage.stored_name("relais.css"), "/static/relais.css", "/static/key.txt",
             "/static/dropped.txt", "/static/ninja/swagger-ui.css.map", "/static/staticfiles.json"):
    print(path.rsplit("/", 1)[-1].split(".")[0], client.get(path, secure=True).status_code)
"""


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="subprocess on its own SQLite settings: runs in the SQLite suite")
def test_production_settings_serve_only_collected_files(prod_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    secret = prod_env["RELAIS_MASTER_KEY_FILE"]
    env = prod_env | {"DJANGO_SETTINGS_MODULE": "relais.settings", "RELAIS_STATIC_ROOT": str(tmp_path / "collected")}
    result = subprocess.run(
        [sys.executable, "-c", PRODUCTION_SCRIPT, secret], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    statuses = [line.split() for line in result.stdout.splitlines()]
    assert statuses[0][1] == "200"  # the hashed stylesheet
    assert [s for _, s in statuses[1:]] == ["404"] * 5, statuses
    assert os.path.islink(tmp_path / "collected" / "key.txt")


def test_openapi_document_names_no_demo_patient(client: Client) -> None:
    document = client.get("/api/v1/openapi.json").content.decode()
    for value in (DEMO_PATIENT.last_name, DEMO_PATIENT.first_names, DEMO_PATIENT.nir, DEMO_PATIENT.phone, DEMO_PATIENT.email):
        assert value and value.lower() not in document.lower()
    assert "NOM-EXEMPLE" in document
