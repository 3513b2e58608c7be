"""Dependencies shared by the routes (`Annotated` aliases in the full-stack-fastapi-template style).

Authentication is deny-by-default: every /v1 router carries `Depends(current_key)`; the
routes then narrow it with `require_role(...)`. FastAPI caches a dependency within a
request, so the key is looked up once however many dependencies ask for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.auth import Role, authenticate, role_satisfies
from service.db.models import ApiKey
from service.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer pv_...`.")


# Dependencies that neither block nor wait are `async def`: FastAPI runs a plain `def` one in a
# worker thread, a hop there and back per request (and a GIL hand-over under load) for nothing.
async def get_state(request: Request) -> Runtime:
    return request.app.state.service


StateDep = Annotated[Runtime, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """A session for one request; writers commit explicitly, anything else is rolled back."""
    with state.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_now(state: StateDep) -> datetime:
    return state.clock()


NowDep = Annotated[datetime, Depends(get_now)]


def current_key(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKey:
    """The caller's API key, or 401. Uses its own short session so that no transaction stays
    open while a large upload streams in."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with state.session_factory() as session:
        key = authenticate(session, credentials.credentials)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


def require_role(*roles: Role) -> Any:
    """`Depends` that passes callers whose role is or includes one of `roles` (admin includes all)."""
    if not roles:
        raise ValueError("expected at least one role")

    async def check(key: CurrentKey) -> ApiKey:  # no I/O: see get_state
        if not role_satisfies(Role(key.role), roles):
            names = ", ".join(sorted({"admin", *(r.value for r in roles)}))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {key.role!r} may not do this; it needs one of: {names}"
            )
        return key

    check.required_roles = frozenset(roles)  # type: ignore[attr-defined]  # read by the route-matrix test
    return Depends(check)


AUTHENTICATED: list[Any] = [Depends(current_key)]  # the router-level dependency of every /v1 router


@dataclass(frozen=True)
class RouteInfo:
    path: str
    name: str
    methods: frozenset[str]
    dependant: Any  # fastapi.dependencies.models.Dependant, or None for plain Starlette routes


def route_table(app: FastAPI) -> list[RouteInfo]:
    """Every route as served, with the prefixes and dependencies of the routers it was included by.

    FastAPI includes routers lazily (`app.routes` holds the routers, not their routes), so
    the effective routes are read through `iter_route_contexts`.
    """
    table = []
    for context in iter_route_contexts(app.routes):
        table.append(
            RouteInfo(
                context.path or "",
                context.name or "",
                frozenset(context.methods or ()),
                getattr(context, "dependant", None),
            )
        )
    return table


def dependency_calls(dependant: Any) -> list[Callable[..., Any]]:
    """Every dependency callable in a route's tree (for the deny-by-default test)."""
    if dependant is None:
        return []
    found = []
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        found.append(dep.call)
        stack.extend(dep.dependencies)
    return found
