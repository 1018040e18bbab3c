"""Settings of the test identity provider: Django OAuth Toolkit as an OIDC provider.

Everything variable comes from the environment the e2e harness sets (e2e/src/idp.rs):
IDP_STATE_DIR (sqlite database), IDP_KEY_FILE (active RS256 key, PEM),
IDP_OLD_KEY_FILES (os.pathsep-separated retired keys still published), IDP_ISSUER.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.environ["IDP_STATE_DIR"]

SECRET_KEY = "test-identity-provider-only-" + os.path.basename(STATE)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "idp.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(HERE, "templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(STATE, "db.sqlite3"),
    }
}
USE_TZ = True
LOGIN_URL = "/accounts/login/"
SESSION_COOKIE_NAME = "idp_session"
CSRF_COOKIE_NAME = "idp_csrf"
# Fast hashing: these are throw-away test users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _read(path):
    with open(path) as f:
        return f.read()


OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": os.environ["IDP_ISSUER"],
    "OIDC_RSA_PRIVATE_KEY": _read(os.environ["IDP_KEY_FILE"]),
    "OIDC_RSA_PRIVATE_KEYS_INACTIVE": [
        _read(p) for p in os.environ.get("IDP_OLD_KEY_FILES", "").split(os.pathsep) if p
    ],
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    "OAUTH2_VALIDATOR_CLASS": "idp.validators.Validator",
    "PKCE_REQUIRED": True,
    "SCOPES": {
        "openid": "OpenID Connect",
        "email": "Email address",
        "profile": "Profile",
    },
}
