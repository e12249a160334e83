"""Routes of API key management, under /api/workspaces/ (config.urls)."""

from django.urls import path

from workspaces import apis_keys

app_name = "api_keys"

urlpatterns = [
    path("<int:workspace_id>/api-keys/", apis_keys.ApiKeyListApi.as_view(), name="list"),
    path("<int:workspace_id>/api-keys/<int:key_id>/", apis_keys.ApiKeyDetailApi.as_view(), name="detail"),
]
