from django.urls import path

from background_tasks import apis

app_name = "background_tasks"

urlpatterns = [
    path("jobs/", apis.JobListApi.as_view(), name="jobs"),
    path("jobs/<str:job_id>/run/", apis.JobRunApi.as_view(), name="job-run"),
]
