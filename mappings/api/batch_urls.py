"""Routes for batch conversions (views in mappings/api/batches.py)."""

from django.urls import path

from mappings.api import batches

urlpatterns = [
    path("batches/", batches.BatchList.as_view(), name="batch-list"),
    path("batches/<int:batch_id>/", batches.BatchDetail.as_view(), name="batch-detail"),
    path("batches/<int:batch_id>/cancel", batches.BatchCancel.as_view(), name="batch-cancel"),
    path("batches/<int:batch_id>/reprocess", batches.BatchReprocess.as_view(), name="batch-reprocess"),
    path("batches/<int:batch_id>/failures/", batches.BatchFailures.as_view(), name="batch-failures"),
    path("batches/<int:batch_id>/pushes/", batches.BatchPushes.as_view(), name="batch-pushes"),
    path("batches/<int:batch_id>/results", batches.BatchResults.as_view(), name="batch-results"),
    path(
        "batches/<int:batch_id>/items/<int:seq>/payload", batches.BatchItemPayload.as_view(), name="batch-item-payload"
    ),
]
