"""MAP geometry for people: drawing an intersection (SVG) and editing it in a GIS tool (GeoJSON).

* :mod:`rsu.maps.geometry`: the geometry of one IntersectionGeometry of a MAPEM in local metres
  (lanes, widths, directions, connections, signal groups, stop lines) from its node offsets, and
  the local tangent plane between WGS84 and those metres;
* :mod:`rsu.maps.svg`: plain SVG text of that geometry (stable ids and classes, optionally
  coloured by a SPATEM's states);
* :mod:`rsu.maps.geojson`: a MAP file to GeoJSON and back, with validation naming every bad
  feature and property at once.

Layer: facilities content only (the JER JSON of a MAPEM/SPATEM, as rsu's MAP files hold it, or
their UPER through :mod:`rsu.codec.facilities`); no I/O besides what the CLI does.
"""
