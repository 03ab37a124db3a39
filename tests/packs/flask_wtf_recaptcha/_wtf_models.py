"""Flask-Security-Too's SQLAlchemy models for the reCAPTCHA pack's tests, declared once.

Table names of their own, so other modules of the suite may declare fsqla models too.
"""

from __future__ import annotations

from flask_security.models import fsqla_v3 as fsqla
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
fsqla.FsModels.set_db_info(
    db,
    user_table_name="wtf_user",
    role_table_name="wtf_role",
    webauthn_table_name="wtf_webauthn",
)


class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "wtf_role"


class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "wtf_user"


class WebAuthn(db.Model, fsqla.FsWebAuthnMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "wtf_webauthn"
