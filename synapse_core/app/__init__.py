"""Dashboard support without Streamlit: data roots, run configurations, selection state."""
