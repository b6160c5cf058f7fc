"""The API base view every app's REST views build on: token first, then the session."""

from __future__ import annotations

from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView


class AegisAPIView(APIView):
    # Token auth first, so an anonymous client is told to send a token (401, not 403).
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
