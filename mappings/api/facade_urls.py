"""Routes for facades, deployments and data sources (views in mappings/api/facades.py)."""

from django.urls import path

from mappings.api import exports, facades

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
    path("facades/<slug:slug>/exports/", exports.ExportJobList.as_view(), name="facade-exports"),
    path("facades/<slug:slug>/groups/", exports.PatientGroupList.as_view(), name="facade-groups"),
    path("facades/<slug:slug>/groups/<str:group_id>", exports.PatientGroupDetail.as_view(), name="facade-group"),
    path("bindings/", facades.ServedBindings.as_view(), name="binding-list"),
    path("resource-types/", facades.ResourceTypes.as_view(), name="resource-types"),
    path("sources/", facades.DataSourceList.as_view(), name="source-list"),
    path("sources/<slug:name>/", facades.DataSourceDetail.as_view(), name="source-detail"),
    path("sources/<slug:name>/records", facades.DataSourceRecords.as_view(), name="source-records"),
]
