"""Create the database and the test users; print their MFA secrets as one JSON line.

Run as ``python -m allauth_project.seed N`` in the pack's test directory: N users with
a TOTP authenticator and recovery codes, and one user with a password only.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allauth_project.settings")

import django

django.setup()

from allauth.account.models import EmailAddress  # noqa: E402
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes  # noqa: E402
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

PASSWORD = "Pack-Test-Pass-4821!"


def user(email: str) -> object:
    made = get_user_model().objects.create_user(
        username=email.split("@")[0].replace(".", "_"), email=email, password=PASSWORD
    )
    EmailAddress.objects.create(user=made, email=email, verified=True, primary=True)
    return made


def main(count: int) -> dict[str, object]:
    call_command("migrate", verbosity=0)
    mfa = []
    for i in range(count):
        email = f"mfa{i}@example.test"
        made = user(email)
        secret = generate_totp_secret()
        TOTP.activate(made, secret)
        codes = RecoveryCodes.activate(made).get_unused_codes()
        mfa.append({"email": email, "secret": secret, "recovery_codes": codes})
    user("linker@example.test")
    return {"password": PASSWORD, "mfa": mfa, "plain": "linker@example.test"}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
