"""Application interfaces: IS_Triggering (trigger / update / terminate) and IS_DataProviding (received messages).

``rsu.api.app.create_app(facade)`` builds the aiohttp application; ``rsu.api.client`` is the small
stdlib client the CLI uses. This module stays import-light (no aiohttp) for the CLI.
"""

DEFAULT_HOST = "127.0.0.1"  # the API binds to localhost unless the configuration says otherwise
DEFAULT_PORT = 8301
