from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.views import LogoutView
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from api import docs_views
from api import views as api_views
from dashboard import account, sharing, site_settings
from dashboard import views as dashboard_views
from widgets import views as widget_views
from zenovay.settings import env_bool

urlpatterns = [
    # Browsers ask for it on every page of this server; the dashboard's pages link it too.
    path("favicon.ico", RedirectView.as_view(url=static("zenovay/favicon.svg"), permanent=True)),
    path("z.js", widget_views.tracker_script, name="tracker"),
    path("widgets/live.js", widget_views.live_script, name="widget-live-script"),
    path("widgets/dashboard.js", widget_views.dashboard_script, name="widget-dashboard-script"),
    re_path(r"^widgets/live/(?P<ident>[^/]+)/?$", widget_views.live_widget, name="widget-live"),
    re_path(
        r"^widgets/live/(?P<ident>[^/]+)/fragment/?$",
        widget_views.live_widget,
        {"fragment": True},
        name="widget-live-fragment",
    ),
    re_path(
        r"^widgets/dashboard/(?P<ident>[^/]+)/?$",
        widget_views.dashboard_widget,
        name="widget-dashboard",
    ),
    re_path(
        r"^widgets/dashboard/(?P<ident>[^/]+)/fragment/?$",
        widget_views.dashboard_widget,
        {"fragment": True},
        name="widget-dashboard-fragment",
    ),
    re_path(r"^e/collect/?$", api_views.collect, name="collect"),
    path("e/openapi.json", docs_views.openapi_json, name="api-openapi"),
    re_path(r"^docs/api/?$", docs_views.api_docs, name="api-docs"),
    re_path(r"^e/live/(?P<ident>[^/]+)/?$", api_views.live, name="api-live"),
    re_path(r"^e/realtime/(?P<ident>[^/]+)/?$", api_views.realtime, name="api-realtime"),
    re_path(r"^e/stats/(?P<ident>[^/]+)/?$", api_views.stats, name="api-stats"),
    re_path(r"^e/(?P<ident>[^/]+)/status/?$", api_views.status, name="api-status"),
    path("healthz", api_views.healthz, name="healthz"),
    path("api/v1/openapi.json", docs_views.external_api_json, name="api-v1-openapi"),
    re_path(r"^docs/api/v1/?$", docs_views.external_api_docs, name="api-v1-docs"),
    path("api/v1/", include("api.v1.urls")),
    path("admin/", admin.site.urls),
    path("", dashboard_views.index, name="home"),
    path("login/", dashboard_views.SignInView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("dashboard/", dashboard_views.sites, name="dashboard"),
    path("dashboard/new/", site_settings.new_site, name="site-new"),
    path("dashboard/account/api-keys/", account.api_keys, name="api-keys"),
    path(
        "dashboard/account/api-keys/<int:pk>/revoke/",
        account.revoke_api_key,
        name="api-key-revoke",
    ),
    path("dashboard/<str:website_id>/", dashboard_views.site, name="dashboard-site"),
    path("dashboard/<str:website_id>/export/", dashboard_views.export, name="dashboard-export"),
    path("dashboard/<str:website_id>/settings/", site_settings.site_settings, name="site-settings"),
    path(
        "dashboard/<str:website_id>/settings/code/",
        site_settings.regenerate_code,
        name="site-regenerate-code",
    ),
    path(
        "dashboard/<str:website_id>/settings/delete/",
        site_settings.delete_site,
        name="site-delete",
    ),
    path("dashboard/<str:website_id>/members/", site_settings.invite, name="site-invite"),
    path(
        "dashboard/<str:website_id>/members/<int:pk>/remove/",
        site_settings.remove_member,
        name="site-remove-member",
    ),
    path(
        "dashboard/<str:website_id>/invitations/<int:pk>/revoke/",
        site_settings.revoke_invitation,
        name="site-revoke-invitation",
    ),
    path("dashboard/<str:website_id>/links/", site_settings.add_link, name="site-add-link"),
    path(
        "dashboard/<str:website_id>/links/<int:pk>/revoke/",
        site_settings.revoke_link,
        name="site-revoke-link",
    ),
    path("dashboard/<str:website_id>/goals/", site_settings.add_goal, name="site-add-goal"),
    path(
        "dashboard/<str:website_id>/goals/<int:pk>/delete/",
        site_settings.delete_goal,
        name="site-delete-goal",
    ),
    path("invite/<str:token>/", sharing.invitation, name="invitation"),
    path("share/<str:slug>/", sharing.shared, name="shared"),
]

if env_bool("ZENOVAY_BENCH_VIEWS"):  # baselines for bench/ingest.py; off unless set
    from api import bench_views

    urlpatterns += [
        path("bench/empty", bench_views.empty, name="bench-empty"),
        path("bench/json", bench_views.accepted_json, name="bench-json"),
    ]

handler400 = "api.views.bad_request"
handler404 = "api.views.not_found"
handler500 = "api.views.server_error"
