"""The URLconf: named and unnamed views, nested namespaces, converters, regexes."""

from __future__ import annotations

from django.urls import include, path, re_path

from . import views

account = ([path("login", views.headless_login, name="login")], "account")
browser = ([path("auth/", include(account))], "browser")
headless = ([path("browser/v1/", include(browser))], "headless")
oauth = ([path("token/", views.token, name="token")], "oauth")

urlpatterns = [
    path("accounts/login/", views.login, name="account_login"),
    path(
        "accounts/<slug:provider>/login/callback/",
        views.social_callback,
        name="socialaccount_callback",
    ),
    path("oauth/", include(oauth)),
    path("_allauth/", include(headless)),
    path("users/<int:pk>/", views.user_detail, name="user_detail"),
    path("docs/<path:rest>", views.docs, name="docs"),
    path("unread/", views.unread, name="unread"),
    path("json/", views.json_view, name="json"),
    path("async/", views.async_json, name="async_json"),
    path("stream/", views.stream, name="stream"),
    path("astream/", views.async_stream, name="astream"),
    path("file/", views.file, name="file"),
    path("boom/", views.boom, name="boom"),
    path("aboom/", views.async_boom, name="aboom"),
    path("missing/", views.missing, name="missing"),
    path("forbidden/", views.forbidden, name="forbidden"),
    path("read/", views.read_stream, name="read_stream"),
    path("upload/", views.upload, name="upload"),
    path("plain/", views.plain),
    path("cbv/", views.Cbv.as_view()),
    re_path(r"^legacy/(?P<code>[0-9]+)/$", views.legacy, name="legacy"),
    re_path(r"^old/(\w+)/$", views.old, name="old"),
    path("files/<path:p>/edit", views.file_edit, name="file_edit"),
]
