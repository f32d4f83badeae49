"""Kiosk window, exam web view, dialogs and the bridge from worker threads to Qt."""
