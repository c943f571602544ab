"""Routes for profiles and IG packages (views in mappings/api/profiles.py). Packages come first: a definition's
address is its id or its canonical URL (`<path:ref>`, slashes included), and no URL is `packages/…`."""

from django.urls import path

from mappings.api import profiles

urlpatterns = [
    path("profiles/", profiles.ProfileList.as_view(), name="profile-list"),
    path("profiles/packages/", profiles.PackageList.as_view(), name="profile-package-list"),
    path("profiles/packages/<int:package_id>", profiles.PackageDetail.as_view(), name="profile-package-detail"),
    path("profiles/<path:ref>", profiles.ProfileDetail.as_view(), name="profile-detail"),
]
