"""``/api/usage/`` (mounted by ``config.urls``)."""

from django.urls import path

from workspaces.apis_usage import UsageApi

app_name = "usage"

urlpatterns = [path("", UsageApi.as_view(), name="usage")]
