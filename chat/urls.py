from django.urls import path

from chat import apis

app_name = "chat"

urlpatterns = [
    path("sessions/", apis.SessionListApi.as_view(), name="sessions"),
    path("sessions/<int:session_id>/", apis.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<int:session_id>/messages/", apis.SessionMessagesApi.as_view(), name="session-messages"),
    path("sessions/<int:session_id>/export/", apis.ExportApi.as_view(), name="session-export"),
    path("history/", apis.HistoryApi.as_view(), name="history"),
    path("messages/<int:message_id>/feedback/", apis.FeedbackApi.as_view(), name="message-feedback"),
]
