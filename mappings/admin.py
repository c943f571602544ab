from django.contrib import admin

admin.site.site_header = "FHIR Studio administration"
admin.site.site_title = "FHIR Studio"
admin.site.index_title = "Mappings, versions, facades and users"
