"""The media relay: ng control protocol (server and client), RTP data path, relay sets."""
