"""ID-token claims of the test users: email, name, username and groups."""
from oauth2_provider.oauth2_validators import OAuth2Validator


class Validator(OAuth2Validator):
    # No per-scope filtering: every test user claim is in every ID token.
    oidc_claim_scope = None

    def get_additional_claims(self, request):
        user = request.user
        return {
            "email": user.email,
            "email_verified": True,
            "name": user.get_full_name() or user.username,
            "preferred_username": user.username,
            "groups": sorted(g.name for g in user.groups.all()),
        }
