from django.urls import path

from djproject.docs import views
from mediagate.django.urls import media_urlpatterns

urlpatterns = [
    path("docs/<int:pk>/", views.document, name="document"),
    path("docs/<int:pk>/jinja/", views.document_jinja, name="document-jinja"),
    path("shows/<slug:show>/", views.show, name="show"),
] + media_urlpatterns(debug_only=False)
