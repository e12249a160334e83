from django.urls import path

from rag import apis

app_name = "rag"

urlpatterns = [
    path("search/", apis.SearchApi.as_view(), name="search"),
    path("categories/", apis.CategoryListApi.as_view(), name="categories"),
    path("documents/", apis.DocumentListApi.as_view(), name="documents"),
    path("documents/<int:document_id>/", apis.DocumentDetailApi.as_view(), name="document-detail"),
    path("index/", apis.IndexDocumentsApi.as_view(), name="index"),
    path("index-documents/", apis.IndexDocumentsApi.as_view(), name="index-documents"),
]
