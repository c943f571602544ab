"""Routes for facades, deployments and data sources (views in mappings/api/facades.py)."""

from django.urls import path

from mappings.api import facades

urlpatterns = [
    path("facades/", facades.FacadeList.as_view(), name="facade-list"),
    path("facades/<slug:slug>/", facades.FacadeDetail.as_view(), name="facade-detail"),
    path("facades/<slug:slug>/bindings/", facades.BindingList.as_view(), name="facade-bindings"),
    path(
        "facades/<slug:slug>/bindings/<str:resource_type>",
        facades.BindingDetail.as_view(),
        name="facade-binding-detail",
    ),
    path("facades/<slug:slug>/deployments/", facades.DeploymentList.as_view(), name="facade-deployments"),
    path("facades/<slug:slug>/deployments/rollback", facades.Rollback.as_view(), name="facade-rollback"),
    path("facades/<slug:slug>/metrics", facades.FacadeMetrics.as_view(), name="facade-metrics"),
    path("bindings/", facades.ServedBindings.as_view(), name="binding-list"),
    path("resource-types/", facades.ResourceTypes.as_view(), name="resource-types"),
    path("sources/", facades.DataSourceList.as_view(), name="source-list"),
    path("sources/<slug:name>/", facades.DataSourceDetail.as_view(), name="source-detail"),
    path("sources/<slug:name>/records", facades.DataSourceRecords.as_view(), name="source-records"),
]
