"""Which certificates an upstream connection trusts and shows, as pip decides it.

Sites behind a TLS-inspecting proxy, or with a private index signed by their own
CA, hand pip a CA bundle with ``--cert`` (or ``PIP_CERT``), and requests-based
tools read ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``; OpenSSL itself reads
``SSL_CERT_FILE``. morgan takes the first of these that is set, so the settings
that already work for pip there work for morgan too, and it checks the files
before the first connection: a wrong path is one line, not a handshake failure
per request.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from urllib3.exceptions import SSLError

from morgan.errors import UsageError

#: Environment variables naming a CA bundle, in the order they are honoured.
CA_BUNDLE_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@dataclass(frozen=True)
class TLSSettings:
    """The CAs to trust (None: the system's) and the client certificate to show."""

    #: A PEM file of CA certificates, or a folder of them (hashed names, as OpenSSL's
    #: ``c_rehash`` makes; requests takes one in ``REQUESTS_CA_BUNDLE``).
    ca_bundle: str | None = None
    #: Where ``ca_bundle`` was named (``--cert``, a variable, a config section), for messages.
    ca_bundle_from: str = ""
    #: One PEM file holding the client certificate and its private key (pip's ``--client-cert``).
    client_cert: str | None = None

    def pool_arguments(self) -> dict[str, str]:
        """The urllib3 pool manager's keyword arguments for these settings."""
        arguments = {}
        if self.ca_bundle and Path(self.ca_bundle).is_dir():
            arguments["ca_cert_dir"] = self.ca_bundle
        elif self.ca_bundle:
            arguments["ca_certs"] = self.ca_bundle
        if self.client_cert:
            arguments["cert_file"] = self.client_cert
        return arguments


def tls_settings(
    cert: str | None,
    client_cert: str | None,
    *,
    cert_from: str = "--cert",
    client_cert_from: str = "--client-cert",
    environ: Mapping[str, str] | None = None,
) -> TLSSettings:
    """The settings from options (or a config section), else from the environment;
    UsageError naming the file and its source if a file cannot be used."""
    environ = os.environ if environ is None else environ
    source = cert_from
    if not cert:
        for variable in CA_BUNDLE_VARIABLES:
            if environ.get(variable):
                cert, source = environ[variable], variable
                break
    if cert:
        _check_ca_bundle(cert, source)
    if client_cert:
        _check_client_cert(client_cert, client_cert_from)
    return TLSSettings(cert or None, source if cert else "", client_cert or None)


def _check_ca_bundle(path: str, source: str) -> None:
    if Path(path).is_dir():
        return  # a folder of hashed certificates: OpenSSL reads it when a certificate is met
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise UsageError(f"{source} names {path}, which does not exist") from None
    except (OSError, ssl.SSLError, ValueError) as error:
        raise UsageError(
            f"{source} names {path}, which is not a PEM bundle of CA certificates ({error})"
        ) from None


def _check_client_cert(path: str, source: str) -> None:
    context = ssl.create_default_context()
    try:
        context.load_cert_chain(path)
    except FileNotFoundError:
        raise UsageError(f"{source} names {path}, which does not exist") from None
    except (OSError, ssl.SSLError, ValueError) as error:
        raise UsageError(
            f"{source} names {path}, which is not one PEM file with a certificate and its "
            f"unencrypted private key ({error})"
        ) from None


def is_certificate_error(error: BaseException) -> bool:
    """Whether a connection failed on certificates, where asking again cannot help."""
    text = str(error)
    return isinstance(error, (SSLError, ssl.SSLError)) and (
        "CERTIFICATE_VERIFY_FAILED" in text
        or "certificate verify failed" in text
        or "doesn't match" in text
        or "CERTIFICATE_REQUIRED" in text
        or "certificate required" in text
        or "BAD_CERTIFICATE" in text
        or "UNKNOWN_CA" in text
        or "HANDSHAKE_FAILURE" in text
    )


def describe_certificate_error(
    host: str, error: BaseException, settings: TLSSettings, *, sections: bool = True
) -> str:
    """One line: what failed, with whose certificate, and the option that fixes it
    (``sections``: also the ``[index.NAME]`` keys, where a config file applies)."""
    text = str(error)
    if "CERTIFICATE_REQUIRED" in text or "certificate required" in text:
        return f"TLS: {host} asks for a client certificate; pass one with --client-cert PEM" + (
            " (or client-cert = in its [index.NAME] section)" if sections else ""
        )
    if "HANDSHAKE_FAILURE" in text:  # TLS 1.2's answer to a missing client certificate, too
        hint = (
            f"check --client-cert ({settings.client_cert})"
            if settings.client_cert
            else "if it asks for a client certificate, pass one with --client-cert PEM"
        )
        return f"TLS: the handshake with {host} failed ({_reason(text)}); {hint}"
    if "BAD_CERTIFICATE" in text or "UNKNOWN_CA" in text:
        return (
            f"TLS: {host} refused the client certificate "
            f"({settings.client_cert or 'none was sent'}); check --client-cert"
        )
    if "certificate has expired" in text:
        return (
            f"TLS: the certificate of {host} has expired; the index must renew it "
            "(or this machine's clock is wrong)"
        )
    if "doesn't match" in text or "Hostname mismatch" in text:
        return f"TLS: the certificate of {host} is not made out for that name ({_reason(text)})"
    trusted = (
        f"the CA bundle {settings.ca_bundle} (from {settings.ca_bundle_from})"
        if settings.ca_bundle
        else "the system's CA certificates"
    )
    where = "cert = in its [index.NAME] section, or " if sections else ""
    variable = settings.ca_bundle_from if settings.ca_bundle_from.isupper() else "SSL_CERT_FILE"
    return (
        f"TLS: the certificate of {host} is not signed by {trusted} ({_reason(text)}); "
        f"pass the CA that signs it with --cert CA_BUNDLE (or {where}{variable})"
    )


def _reason(text: str) -> str:
    """The last clause of an OpenSSL message ("unable to get local issuer certificate")."""
    for marker in ("certificate verify failed: ", "doesn't match ", "] "):
        if marker in text:
            text = text.split(marker, 1)[1]
            break
    return text.split(" (_ssl.c", 1)[0].rstrip(")'\"").strip() or "unknown reason"
