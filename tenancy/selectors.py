"""Who is looking. Every read of tenant data takes a `Viewer` built here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import IngestToken, Membership, Municipality


@dataclass(frozen=True)
class Viewer:
    """The identity a query is scoped to: a user, a gateway token, or nobody (the public)."""

    user_id: int | None = None
    municipality_ids: frozenset[int] = field(default_factory=frozenset)
    is_platform_admin: bool = False
    token_id: int | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None and self.token_id is None

    @property
    def is_member(self) -> bool:
        """Belongs to at least one town on the platform, so may see region-wide stations."""
        return self.is_platform_admin or bool(self.municipality_ids)


ANONYMOUS = Viewer()


def viewer_for_user(user) -> Viewer:
    if user is None or not user.is_authenticated or not user.is_active:
        return ANONYMOUS
    ids = frozenset(Membership.objects.filter(user_id=user.pk).values_list("municipality_id", flat=True))
    return Viewer(user_id=user.pk, municipality_ids=ids, is_platform_admin=user.is_superuser)


def viewer_for_token(token: IngestToken) -> Viewer:
    return Viewer(token_id=token.pk, municipality_ids=frozenset({token.municipality_id}))


def viewer_for_request(request) -> Viewer:
    cached = getattr(request, "_mizumori_viewer", None)
    if cached is not None:
        return cached
    auth = getattr(request, "auth", None)
    viewer = viewer_for_token(auth) if isinstance(auth, IngestToken) else viewer_for_user(request.user)
    request._mizumori_viewer = viewer
    return viewer


def municipality_list() -> list[Municipality]:
    return list(Municipality.objects.order_by("code"))


def ingest_token_by_secret(secret: str) -> IngestToken | None:
    if not secret:
        return None
    return (
        IngestToken.objects.select_related("municipality")
        .filter(digest=IngestToken.digest_of(secret), revoked_at__isnull=True)
        .first()
    )
