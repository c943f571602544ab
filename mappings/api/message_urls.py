"""Routes for the message log (views in mappings/api/messages.py)."""

from django.urls import path

from mappings.api import messages

urlpatterns = [
    path("messages/", messages.MessageList.as_view(), name="message-list"),
    path("messages/<int:message_id>", messages.MessageDetail.as_view(), name="message-detail"),
    path("messages/<int:message_id>/reprocess", messages.MessageReprocess.as_view(), name="message-reprocess"),
]
