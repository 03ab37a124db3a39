"""``python -m dot_project.seed``: migrate the database, add a user and the clients.

Run once per database before a server starts on it. The clients (all with
``http://client.example.test/callback`` as redirect URI):

- ``dot-public``: public, authorization code, consent page shown;
- ``dot-public-auto``: public, authorization code, ``skip_authorization``;
- ``dot-confidential``: confidential, authorization code, secret ``conf-secret-dot``;
- ``dot-machine``: confidential, client credentials, secret ``machine-secret-dot``.
"""

from __future__ import annotations

import os

import django
from django.core.management import call_command

REDIRECT_URI = "http://client.example.test/callback"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dot_project.settings")
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)

    from django.contrib.auth import get_user_model
    from oauth2_provider.models import Application

    get_user_model().objects.create_user("alice", password="correct horse battery")
    clients = [
        ("dot-public", Application.CLIENT_PUBLIC, Application.GRANT_AUTHORIZATION_CODE, "", False),
        (
            "dot-public-auto",
            Application.CLIENT_PUBLIC,
            Application.GRANT_AUTHORIZATION_CODE,
            "",
            True,
        ),
        (
            "dot-confidential",
            Application.CLIENT_CONFIDENTIAL,
            Application.GRANT_AUTHORIZATION_CODE,
            "conf-secret-dot",
            False,
        ),
        (
            "dot-machine",
            Application.CLIENT_CONFIDENTIAL,
            Application.GRANT_CLIENT_CREDENTIALS,
            "machine-secret-dot",
            False,
        ),
    ]
    for client_id, client_type, grant, secret, skip in clients:
        Application.objects.create(
            name=client_id,
            client_id=client_id,
            client_secret=secret,
            client_type=client_type,
            authorization_grant_type=grant,
            redirect_uris=REDIRECT_URI,
            skip_authorization=skip,
        )


if __name__ == "__main__":
    main()
