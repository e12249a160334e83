"""``django.contrib.admin`` whose ``admin.site`` puts its login behind the lockout (``users.lockout``);
listed in ``INSTALLED_APPS`` in place of ``django.contrib.admin``."""

from django.contrib.admin.apps import AdminConfig


class LockoutAdminConfig(AdminConfig):
    default_site = "users.admin_site.AdminSite"
