"""Who is looking. Every read of tenant data takes a `Viewer` built here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import IngestToken, Membership, Municipality


ROLE_RANK = {Membership.Role.VIEWER: 1, Membership.Role.OPERATOR: 2, Membership.Role.ADMIN: 3}
ACTIVE_TOWN_SESSION_KEY = "mizumori_active_town"


@dataclass(frozen=True)
class Viewer:
    """The identity a query is scoped to: a user acting for one town, a gateway token, or nobody.

    A user who belongs to several towns (prefecture staff) acts for one at a time: they see what
    that town may see and have that town's role, and switch explicitly (`town_switch`).
    """

    user_id: int | None = None
    municipality_ids: frozenset[int] = field(default_factory=frozenset)
    is_platform_admin: bool = False
    token_id: int | None = None
    role: str | None = None
    acting_municipality_id: int | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.user_id is None and self.token_id is None

    @property
    def is_member(self) -> bool:
        """Belongs to at least one town on the platform, so may see region-wide stations."""
        return self.is_platform_admin or bool(self.municipality_ids)

    def has_role(self, role: str) -> bool:
        """At least `role` in the acting town (platform admins have every role)."""
        if self.is_platform_admin:
            return True
        return self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[role]


ANONYMOUS = Viewer()


def memberships_of(user) -> list[Membership]:
    return list(
        Membership.objects.filter(user_id=user.pk).select_related("municipality").order_by("municipality__code")
    )


def viewer_for_user(user, active_municipality_id: int | None = None) -> Viewer:
    if user is None or not user.is_authenticated or not user.is_active:
        return ANONYMOUS
    memberships = memberships_of(user)
    acting = next((m for m in memberships if m.municipality_id == active_municipality_id), None)
    acting = acting or (memberships[0] if memberships else None)
    if acting is None:
        return Viewer(user_id=user.pk, is_platform_admin=user.is_superuser)
    return Viewer(
        user_id=user.pk,
        municipality_ids=frozenset({acting.municipality_id}),
        is_platform_admin=user.is_superuser,
        role=acting.role,
        acting_municipality_id=acting.municipality_id,
    )


def viewer_for_token(token: IngestToken) -> Viewer:
    return Viewer(
        token_id=token.pk,
        municipality_ids=frozenset({token.municipality_id}),
        role=Membership.Role.VIEWER,
        acting_municipality_id=token.municipality_id,
    )


def active_municipality_id(session) -> int | None:
    raw = session.get(ACTIVE_TOWN_SESSION_KEY) if session is not None else None
    return raw if isinstance(raw, int) else None


def viewer_for_request(request) -> Viewer:
    """The viewer of an HTTP request (Django's or DRF's), cached on the underlying HttpRequest."""
    http_request = getattr(request, "_request", request)
    cached = getattr(http_request, "_mizumori_viewer", None)
    if cached is not None:
        return cached
    auth = getattr(request, "auth", None)
    if isinstance(auth, IngestToken):
        viewer = viewer_for_token(auth)
    else:
        viewer = viewer_for_user(request.user, active_municipality_id(getattr(request, "session", None)))
    http_request._mizumori_viewer = viewer
    return viewer


def municipality_list() -> list[Municipality]:
    return list(Municipality.objects.order_by("code"))


def ingest_token_by_secret(secret: str) -> IngestToken | None:
    if not secret:
        return None
    return (
        # Every gateway POST reads its token: not the town's boundary (a GeoJSON polygon, often
        # hundreds of KB), which the request path never uses.
        IngestToken.objects.select_related("municipality")
        .defer("municipality__boundary")
        .filter(digest=IngestToken.digest_of(secret), revoked_at__isnull=True)
        .first()
    )
