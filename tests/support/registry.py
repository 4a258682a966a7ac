"""A real CNCF Distribution registry (Debian's ``docker-registry`` 2.8.2) for tests and demos.

Runs ``docker-registry serve CONFIG.yml`` on a free loopback port with filesystem storage
in a temporary directory, optionally behind htpasswd basic auth and/or TLS with a
throwaway self-signed certificate. Token auth is not offered: Distribution needs a
separate token server for it, so the bearer flow is tested with ``httpx.MockTransport``.

    with RegistryServer(htpasswd=("alice", "s3cret"), tls=True) as reg:
        push_image(reg.url, "team/app", ["1.0.0"], auth=reg.auth, verify=str(reg.ca_file))

``client_ca=True`` (implies TLS) makes the registry demand a client certificate (mTLS,
``http.tls.clientcas``): a throwaway client CA and a client certificate signed by it are
made with openssl; ``client_cert``/``client_key`` are for the client under test, and
``ssl_context()`` trusts the server and presents that certificate (for pushing).
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.support.process import ServerProcess, free_port, wait_for_port, wait_until

__all__ = ["RegistryServer"]

REGISTRY_BINARY = "docker-registry"


class RegistryServer:
    """A ``docker-registry`` process; use as a context manager (or ``start``/``stop``).

    Attributes once started: ``host`` (``127.0.0.1:PORT``, as written in image
    references), ``url`` (``http(s)://host``), ``ca_file`` (the self-signed certificate,
    which is its own CA, when ``tls=True``), ``auth`` (the htpasswd pair or None).
    """

    def __init__(
        self,
        *,
        htpasswd: tuple[str, str] | None = None,
        tls: bool = False,
        root: Path | None = None,
        notification_urls: Sequence[str] = (),
        notification_headers: Mapping[str, str] | None = None,
        port: int | None = None,
        client_ca: bool = False,
    ) -> None:
        if shutil.which(REGISTRY_BINARY) is None:
            raise RuntimeError(
                f"{REGISTRY_BINARY} is not installed; run: apt-get install -y docker-registry "
                "apache2-utils"
            )
        self.auth = htpasswd
        self.tls = tls or client_ca
        self.client_ca = client_ca
        self.notification_urls = tuple(notification_urls)
        self.notification_headers = dict(notification_headers or {})
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._root = root
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if self.tls else 'http'}://{self.host}"
        self.ca_file: Path | None = None
        self.client_cert: Path | None = None
        self.client_key: Path | None = None
        self._process: ServerProcess | None = None

    @property
    def root(self) -> Path:
        """Directory holding the config, certificates, htpasswd file, storage and log."""
        if self._root is None:
            raise RuntimeError("RegistryServer is not started")
        return self._root

    def start(self) -> RegistryServer:
        if self._root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="automator-registry-")
            self._root = Path(self._tmp.name)
        self._root.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._process = ServerProcess(
            [REGISTRY_BINARY, "serve", str(config)], log=self.root / "registry.log"
        ).start()
        try:
            wait_for_port(self.port, timeout=30)
            wait_until(self._ready, timeout=30, what=f"registry at {self.url} to answer /v2/")
        except BaseException:
            self._process.check_alive()
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._root = None

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _ready(self) -> bool:
        """``GET /v2/`` answers 200 (anonymous) or 401 (auth configured): the API is up."""
        self._check_alive()
        context = self.ssl_context() if self.ca_file else None
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=context) as resp:
                return int(resp.status) == 200
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except urllib.error.URLError:
            return False

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts this server's certificate and presents the client certificate, if any."""
        if self.ca_file is None:
            raise RuntimeError("RegistryServer has no TLS (start it with tls=True)")
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if self.client_cert is not None and self.client_key is not None:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context

    def _check_alive(self) -> None:
        if self._process is not None:
            self._process.check_alive()

    def _write_config(self) -> Path:
        # JSON is valid YAML, which spares a YAML dependency in the test helpers.
        storage = self.root / "storage"
        storage.mkdir(exist_ok=True)
        http: dict[str, object] = {
            "addr": self.host,
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(storage)},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
        }
        if self.tls:
            cert, key = self._make_certificate()
            tls: dict[str, object] = {"certificate": str(cert), "key": str(key)}
            if self.client_ca:
                tls["clientcas"] = [str(self._make_client_certificate())]
            http["tls"] = tls
            self.ca_file = cert
        if self.auth is not None:
            config["auth"] = {
                "htpasswd": {"realm": "automator-test", "path": str(self._make_htpasswd())}
            }
        if self.notification_urls:
            config["notifications"] = {
                "endpoints": [
                    {
                        "name": f"hook{i}",
                        "url": url,
                        "headers": {k: [v] for k, v in self.notification_headers.items()},
                        "timeout": "2s",
                        "threshold": 3,
                        "backoff": "1s",
                    }
                    for i, url in enumerate(self.notification_urls)
                ]
            }
        path = self.root / "config.yml"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return path

    def _make_htpasswd(self) -> Path:
        assert self.auth is not None
        user, password = self.auth
        out = subprocess.run(
            ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
        ).stdout
        path = self.root / "htpasswd"
        path.write_text(out.strip() + "\n", encoding="utf-8")
        return path

    def _make_certificate(self) -> tuple[Path, Path]:
        """A self-signed certificate for 127.0.0.1 (it doubles as its own CA)."""
        cert, key = self.root / "registry.crt", self.root / "registry.key"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                "-days", "2", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return cert, key

    def _make_client_certificate(self) -> Path:
        """A client CA, and a client certificate it signed (``client_cert``/``client_key``)."""
        ca_cert, ca_key = self.root / "client-ca.crt", self.root / "client-ca.key"
        cert, key = self.root / "client.crt", self.root / "client.key"
        csr, ext = self.root / "client.csr", self.root / "client.ext"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                "-days", "2", "-subj", "/CN=automator test client CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout", str(ca_key), "-out", str(ca_cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [
                "openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
                "-subj", "/CN=automator", "-keyout", str(key), "-out", str(csr),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        ext.write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n",
            encoding="utf-8",
        )
        subprocess.run(
            [
                "openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert),
                "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2", "-sha256",
                "-extfile", str(ext), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.client_cert, self.client_key = cert, key
        return ca_cert
