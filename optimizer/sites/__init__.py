"""Sites from maps: OSM (.osm.pbf, .osm) or GeoJSON building footprints -> a scene bundle with site.json.

One module per concept: `area` (which part of the map), `osm` and `geojson` (reading; GeoJSON writing),
`projection` (the local UTM frame), `tags` (heights and materials), `footprints` (repair, orientation),
`walls` (exposed walls, shared ones removed), `meshes` (extrusion, PLY, scene.xml), `record` (site.json),
`importer` (the whole import), `facades` (the listing behind `reflectopt scene walls`), `positions`
({lat, lon, height_m} positions in an experiment).
"""
