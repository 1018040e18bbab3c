"""Prepare the test identity provider's state directory.

  python setup_idp.py keygen PATH        write a fresh RSA-2048 private key (PEM)
  python setup_idp.py setup              migrate, create users and the Gatehouse client

`setup` reads IDP_CLIENT_ID, IDP_CLIENT_SECRET, IDP_REDIRECT_URIS and
IDP_POST_LOGOUT_URIS (space-separated) besides the settings' variables.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def keygen(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(path, "wb") as f:
        f.write(pem)


def setup():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from oauth2_provider.models import get_application_model

    call_command("migrate", verbosity=0)
    reporters, _ = Group.objects.get_or_create(name="reporters")
    users = [
        ("clark", "Clark", "Kent", "clark@dailyplanet.example", [reporters]),
        ("lex", "Lex", "Luthor", "lex@lexcorp.example", []),
    ]
    for username, first, last, email, groups in users:
        u = User.objects.create_user(
            username, email=email, password=username + "-password",
            first_name=first, last_name=last,
        )
        u.groups.set(groups)
    Application = get_application_model()
    Application.objects.create(
        name="Gatehouse",
        client_id=os.environ["IDP_CLIENT_ID"],
        client_secret=os.environ["IDP_CLIENT_SECRET"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=os.environ["IDP_REDIRECT_URIS"],
        post_logout_redirect_uris=os.environ.get("IDP_POST_LOGOUT_URIS", ""),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["keygen"]:
        keygen(sys.argv[2])
    elif sys.argv[1:2] == ["setup"]:
        setup()
    else:
        sys.exit(__doc__)
