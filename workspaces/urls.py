from django.urls import path

from workspaces import apis

app_name = "workspaces"

urlpatterns = [
    path("", apis.WorkspaceListApi.as_view(), name="workspaces"),
    path("invitations/accept/", apis.InvitationAcceptApi.as_view(), name="invitation-accept"),
    path("<int:workspace_id>/", apis.WorkspaceDetailApi.as_view(), name="workspace-detail"),
    path("<int:workspace_id>/members/", apis.MemberListApi.as_view(), name="members"),
    path("<int:workspace_id>/members/<int:user_id>/", apis.MemberDetailApi.as_view(), name="member-detail"),
    path("<int:workspace_id>/leave/", apis.LeaveApi.as_view(), name="leave"),
    path("<int:workspace_id>/invitations/", apis.InvitationListApi.as_view(), name="invitations"),
    path(
        "<int:workspace_id>/invitations/<int:invitation_id>/",
        apis.InvitationDetailApi.as_view(),
        name="invitation-detail",
    ),
]
