"""Routes. Every API route lives under /api/ and appears in the OpenAPI schema; /metrics
(Prometheus, a plain Django view) is neither."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from users.apis import TokenRefreshApi
from utils.apis import HealthApi
from utils.metrics_view import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/", include("users.urls")),
    path("api/rag/", include("rag.urls")),
    path("api/chat/", include("chat.urls")),
    path("api/workspaces/", include("workspaces.urls")),
    path("api/ops/", include("background_tasks.urls")),
    path("api/usage/", include("workspaces.urls_usage")),
    path("api/workspaces/", include("workspaces.urls_keys")),
    path("api/token/refresh/", TokenRefreshApi.as_view(), name="token-refresh-alias"),
    path("api/health/", HealthApi.as_view(), name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("metrics", metrics, name="metrics"),
]

handler400 = "utils.views.bad_request"
handler403 = "utils.views.permission_denied"
handler404 = "utils.views.page_not_found"
handler500 = "utils.views.server_error"
