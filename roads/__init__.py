"""Road routing over OpenStreetMap extracts: free-flow speeds by road class, positions snapped
to the nearest road node, fastest paths with their seconds, metres and geometry.

>>> from roads import load_road_network, Router
>>> router = Router(load_road_network("data/roads/west-oakland.osm.bz2"))
>>> r = router.route(37.8075, -122.3015, 37.8100, -122.2985)  # r.seconds, r.metres, r.lat, r.lng

Imports nothing of the project but the kernel; dispatch takes a `Router` as its ETA model
(through the wiring) and the simulator drives its cars along `Route`s.
"""

from .network import RoadNetwork, load_road_network
from .osm import RoadError
from .router import OffNetwork, Route, Router

__all__ = ["OffNetwork", "RoadError", "RoadNetwork", "Route", "Router", "load_road_network"]
